package actors

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
	"github.com/vmihailenco/msgpack/v5"
)

// memberState is where one process of the pool is; a member moves only through
// [pool.set], which keeps the counts.
type memberState int

const (
	memberStarting memberState = iota // spawned, not yet running
	memberIdle                        // running, in the idle list
	memberBusy                        // handed out
	memberClosing                     // asked to close; Exited and Terminated to come
	memberStates
)

type member struct {
	pid   *actor.PID
	ospid int
	state memberState
	gen   int // the config it was started with: a rolling replacement retires the older ones
	uses  int
	// maxUses and retireAt are its recycling limits (jittered; 0 and zero never).
	maxUses int
	// idleSince is when it last became idle; stable, whether it stayed up StableAfter
	// after it was ready.
	idleSince time.Time
	stable    bool
	retireAt  time.Time
}

// memberGone: a member actor stopped, and every event it sent before is handled.
type memberGone struct{ pid *actor.PID }

// set moves mb to state s.
func (p *pool) set(mb *member, s memberState) {
	p.counts[mb.state]--
	mb.state = s
	p.counts[s]++
}

func (p *pool) event(ctx actor.Context, kind messages.PoolEventKind, mb *member) {
	p.metrics.retired(p.name, kind)
	ev := &messages.PoolEvent{Pool: p.self, Kind: kind, Process: mb.pid, OSPid: mb.ospid}
	if ctx.Parent() != nil {
		ctx.Send(ctx.Parent(), ev)
	}
	p.system.EventStream.Publish(ev)
}

// refill starts processes until idle and starting ones (and, with Reuse, busy ones) cover
// the target and the waiting callers, within MaxStarting and the backoff.
func (p *pool) refill(ctx actor.Context) {
	if wait := time.Until(p.backoffUntil); wait > 0 {
		if !p.refillSet {
			p.refillSet = true
			sendAfter(p.system, wait, p.self, &poolRefill{})
		}
		return
	}
	for {
		starting := p.counts[memberStarting]
		want := p.target() + len(p.waiters) + p.surge()
		have := len(p.idle) + starting
		if p.cfg.Reuse {
			have += p.counts[memberBusy] // they come back: the target counts them
		}
		if have >= want || starting >= p.cfg.MaxStarting {
			return
		}
		if p.cfg.MaxProcesses > 0 && len(p.idle)+starting+p.counts[memberBusy] >= p.cfg.MaxProcesses {
			if !p.retireOldIdle(ctx) { // at the cap: a rolling replacement frees a slot
				return
			}
			continue
		}
		p.spawnMember(ctx, "", p.gen)
	}
}

// spawnMember spawns a member of config generation gen, named name ("" for a new name).
// A pool whose processes are kept names its members itself, uniquely across programs,
// so that the next program adopts each under its name (adoptMembers).
func (p *pool) spawnMember(ctx actor.Context, name string, gen int) {
	if name == "" && p.cfg.Process.Keeper != nil {
		p.named++
		name = fmt.Sprintf("m%x-%d", p.started.UnixNano(), p.named)
	}
	var pid *actor.PID
	if name == "" {
		pid = ctx.Spawn(p.props)
	} else {
		var err error
		if pid, err = ctx.SpawnNamed(p.props, name); err != nil {
			return
		}
	}
	mb := &member{pid: pid, state: memberStarting, gen: gen}
	p.members[pid.Id] = mb
	p.counts[memberStarting]++
	p.event(ctx, messages.PoolCreated, mb)
}

// adoptMembers spawns a member for each process the pool's keeper holds under a member's
// name of this pool: it adopts the process. One of another config (an earlier build)
// counts as old, as in a rolling replacement: it is retired when idle, as new ones are
// ready.
func (p *pool) adoptMembers(ctx actor.Context) {
	k := p.cfg.Process.Keeper
	if k == nil {
		return
	}
	prefix := p.self.Id + "/"
	old := 0
	for _, o := range k.Orphans() {
		name, ok := strings.CutPrefix(o.Name, prefix)
		if !ok || strings.Contains(name, "/") {
			continue
		}
		var note keptNote
		msgpack.Unmarshal(o.Note, &note)
		gen := p.gen
		if note.Config != p.print {
			gen = p.gen - 1
			old++
		}
		p.spawnMember(ctx, name, gen)
	}
	if old > 0 {
		p.rollout = &rolloutRun{oldGen: p.gen - 1, oldProps: p.props, oldPrint: p.print}
		p.rolloutEvent(ctx, messages.RolloutStarted, nil)
	}
}

// target is how many idle processes the pool keeps: Target, or none above the load
// threshold.
func (p *pool) target() int {
	if p.cfg.Load != nil && p.cfg.Load() > p.cfg.LoadThreshold {
		return 0
	}
	return p.cfg.Target
}

// trim closes idle processes above the target: the least used first (a process started
// to keep the target while another was busy goes, the warm one that came back stays).
func (p *pool) trim(ctx actor.Context) { p.closeSurplus(ctx, 0) }

// closeSurplus closes idle processes above the target that have been idle for at least
// idleFor, the least used first, and reports whether some above it are left.
func (p *pool) closeSurplus(ctx actor.Context, idleFor time.Duration) bool {
	for len(p.idle) > p.target() {
		i := -1
		for j, mb := range p.idle {
			if time.Since(mb.idleSince) >= idleFor && (i < 0 || mb.uses <= p.idle[i].uses) {
				i = j
			}
		}
		if i < 0 {
			return true
		}
		mb := p.idle[i]
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		p.closeMember(ctx, mb)
	}
	return false
}

func (p *pool) closeMember(ctx actor.Context, mb *member) {
	p.set(mb, memberClosing)
	ctx.Send(mb.pid, &messages.Close{Reason: "pool"})
}

// stateChanged records a member's OS pid when it starts, and returns the member that
// just became ready (nil otherwise) for the state to place.
func (p *pool) stateChanged(ctx actor.Context, m *messages.StateChanged) *member {
	mb := p.members[m.PID.Id]
	if mb == nil {
		return nil
	}
	switch m.To {
	case messages.Initializing:
		mb.ospid = m.OSPid
		p.event(ctx, messages.PoolStarted, mb)
	case messages.Running:
		if mb.state != memberStarting {
			return nil
		}
		mb.ospid = m.OSPid           // an adopted member was not seen initializing
		p.backoffUntil = time.Time{} // failures reset once it is stable (memberStable)
		sendAfter(p.system, p.cfg.StableAfter, p.self, &memberStable{pid: mb.pid})
		if p.cfg.MaxUses > 0 {
			mb.maxUses = max(1, int(float64(p.cfg.MaxUses)*jitter()+0.5))
		}
		if p.cfg.MaxAge > 0 {
			mb.retireAt = time.Now().Add(time.Duration(float64(p.cfg.MaxAge) * jitter()))
		}
		p.set(mb, memberIdle)
		p.event(ctx, messages.PoolReady, mb)
		return mb
	}
	return nil
}

// makeIdle puts a ready or released member in the idle list and serves the waiting
// callers from it.
func (p *pool) makeIdle(ctx actor.Context, mb *member) {
	p.set(mb, memberIdle)
	mb.idleSince = time.Now()
	p.idle = append(p.idle, mb)
	p.serveWaiters(ctx)
	p.trimIdle(ctx)
}

// trimIdle closes idle processes beyond the target that have been idle IdleTimeout, the
// least used first, and looks again later while some are beyond it.
func (p *pool) trimIdle(ctx actor.Context) {
	if p.closeSurplus(ctx, p.cfg.IdleTimeout) && !p.idleTickSet {
		p.idleTickSet = true
		sendAfter(p.system, p.cfg.IdleTimeout, p.self, &poolIdleTick{})
	}
}

// exited handles a process that ended: a failed start (or an end unasked before it was
// stable) counts towards the backoff.
func (p *pool) exited(ctx actor.Context, m *messages.Exited) {
	mb := p.members[m.PID.Id]
	if mb == nil {
		return
	}
	// A failed start of a config no longer in use (an aborted rollout's) delays nothing.
	if mb.gen == p.gen && (mb.state == memberStarting || p.failedAfterReady(mb, m)) {
		p.failures++
		p.lastErr = failureOf(m)
		delay := p.cfg.Backoff.Jittered(p.failures)
		p.backoffUntil = time.Now().Add(delay)
		ev := &messages.PoolBackoff{Pool: p.self, Failures: p.failures, Delay: delay, Cause: p.lastErr}
		if ctx.Parent() != nil {
			ctx.Send(ctx.Parent(), ev)
		}
		p.system.EventStream.Publish(ev)
	}
	p.remove(ctx, mb)
}

// failedAfterReady reports whether mb, ready, ended unasked before it was stable: a
// failed start all the same.
func (p *pool) failedAfterReady(mb *member, m *messages.Exited) bool {
	return mb.state != memberStarting && mb.state != memberClosing && !mb.stable && !m.Reason.Requested()
}

func (p *pool) remove(ctx actor.Context, mb *member) {
	if _, ok := p.members[mb.pid.Id]; !ok {
		return
	}
	delete(p.members, mb.pid.Id)
	p.counts[mb.state]--
	for i, x := range p.idle {
		if x == mb {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	p.event(ctx, messages.PoolClosed, mb)
}

// jitter is a factor within ±10% of 1.
func jitter() float64 { return 0.9 + 0.2*rand.Float64() }

// worn reports whether mb has reached its uses or its age.
func (p *pool) worn(mb *member) bool {
	return mb.maxUses > 0 && mb.uses >= mb.maxUses || !mb.retireAt.IsZero() && !time.Now().Before(mb.retireAt)
}

// readyMember places a member that just became ready: a new one of a rolling
// replacement retires an old idle one (the switch: from now on no old one is handed out).
func (p *pool) readyMember(ctx actor.Context, mb *member) {
	if p.rollout != nil && mb.gen == p.gen {
		p.rollout.switched = true
		p.retireOldIdle(ctx)
	}
	p.makeIdle(ctx, mb)
}
