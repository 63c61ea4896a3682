package actors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

var (
	// ErrPoolDraining answers an Acquire to a pool that is draining or stopping.
	ErrPoolDraining = errors.New("procsup/actors: pool is draining")
	// ErrAcquireTimeout answers an Acquire whose deadline passed before a process was
	// ready.
	ErrAcquireTimeout = errors.New("procsup/actors: no process ready before the deadline")
	// ErrNotPool answers an Acquire sent to an actor that is not a pool.
	ErrNotPool = errors.New("procsup/actors: not a pool")
	// ErrStartsFailing answers the waiting Acquires when a start failed and no other
	// start is under way, or MaxStarting starts in a row failed; it wraps the last
	// start's failure.
	ErrStartsFailing = errors.New("procsup/actors: pool processes fail to start")
)

// PoolConfig configures a pool of prewarmed processes.
type PoolConfig struct {
	// Process configures every process; its restart policy is ignored (the pool
	// replaces a process instead of restarting it).
	Process Config
	// Target is how many idle, initialized processes the pool keeps ready.
	Target int
	// Reuse returns a released process to idle; without it a released process is
	// closed (single use).
	Reuse bool
	// MaxStarting caps concurrent starts; 0 means min(NumCPU, 4).
	MaxStarting int
	// Backoff spaces starts after failed ones (Initial, Max, Multiplier, Jitter; its
	// intensity fields are not used). Zero means 100 ms doubling to 30 s.
	Backoff Backoff

	// MaxUses retires a process after it was acquired this many times, and MaxAge one
	// this long after it became ready (when it is next released or about to be handed
	// out); each with ±10% jitter, so that processes started together do not all go
	// together. 0 never.
	MaxUses int
	MaxAge  time.Duration
	// MaxProcesses caps the pool's processes, idle, busy and starting together; 0 is no
	// cap. Callers over it wait (within their deadline) for a release.
	MaxProcesses int
	// Load, when set, is read on the pool's goroutine before it starts processes and
	// every LoadInterval: above LoadThreshold the pool keeps no idle process beyond what
	// waiting callers need (its Target is back when the load is). HostCPU is one.
	// It must be quick.
	Load          func() float64
	LoadThreshold float64
	LoadInterval  time.Duration // 0 means 1 s
	// MaxSurge is how many replacements a rolling replacement (Rollout) starts at once
	// beyond the target; 0 means 1.
	MaxSurge int
	// RolloutFailures is how many new processes in a row may fail to start before a
	// rolling replacement is aborted and the old config restored; 0 means 3.
	RolloutFailures int
}

// NewPool returns the props of a pool actor, or an error matching [ErrBadConfig]. Use
// [Acquire] and [Release] with it; send messages.SetTarget, messages.Drain and
// messages.GetPoolStatus to it.
func NewPool(cfg PoolConfig) (*actor.Props, error) {
	if cfg.Target < 0 || cfg.MaxStarting < 0 || cfg.MaxUses < 0 || cfg.MaxAge < 0 || cfg.MaxProcesses < 0 ||
		cfg.LoadInterval < 0 || cfg.MaxSurge < 0 || cfg.RolloutFailures < 0 {
		return nil, fmt.Errorf("%w: a negative pool setting", ErrBadConfig)
	}
	if cfg.MaxSurge == 0 {
		cfg.MaxSurge = 1
	}
	if cfg.RolloutFailures == 0 {
		cfg.RolloutFailures = 3
	}
	if cfg.LoadInterval == 0 {
		cfg.LoadInterval = time.Second
	}
	cfg.Process.Restart = Temporary
	props, err := NewProcess(cfg.Process)
	if err != nil {
		return nil, err
	}
	if cfg.MaxStarting == 0 {
		cfg.MaxStarting = defaultConcurrency
	}
	if cfg.Backoff.Initial == 0 {
		cfg.Backoff.Initial, cfg.Backoff.Max = DefaultBackoff.Initial, DefaultBackoff.Max
	}
	stop := actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })
	return actor.PropsFromProducer(func() actor.Actor {
		p := &pool{cfg: cfg, props: props, members: map[string]*member{}}
		p.behavior.Become(p.serving)
		return p
	}, actor.WithSupervisor(stop)), nil
}

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
	maxUses  int
	retireAt time.Time
}

type waiter struct {
	to     *actor.PID
	cancel func()
}

// pool is the pool actor. Its own states are behaviors: serving (hands out processes
// and keeps Target idle ones ready), draining (starts nothing, closes each process as it
// comes back, answers Drain when none is left) and stopping (the actor stops: starts
// nothing, answers nothing but status).
type pool struct {
	behavior actor.Behavior
	cfg      PoolConfig
	props    *actor.Props
	system   *actor.ActorSystem
	self     *actor.PID
	members  map[string]*member
	counts   [memberStates]int
	idle     []*member // oldest first
	waiters  []*waiter

	failures     int
	backoffUntil time.Time
	refillSet    bool
	lastErr      error

	drainedTo []*actor.PID // who asked to drain, answered when the last process is gone
	drainStop func()

	gen     int         // the current config's generation (props are that config's)
	rollout *rolloutRun // the rolling replacement under way, or nil

	metrics   *instruments // nil without a MeterProvider
	name      string       // the metrics' label
	published atomic.Pointer[messages.PoolStatus]
}

type (
	poolRefill      struct{}
	poolWaiterOver  struct{ w *waiter }
	poolDrainTimeUp struct{}
	poolLoadTick    struct{}
	// rolloutStart brings a rolling replacement's new config (Rollout).
	rolloutStart struct{ props *actor.Props }
)

// rolloutRun is a rolling replacement under way.
type rolloutRun struct {
	oldGen   int
	oldProps *actor.Props
	switched bool // a new process is ready: no old one is handed out any more
	failures int  // new processes in a row that failed to start
}

func (p *pool) Receive(ctx actor.Context) {
	p.behavior.Receive(ctx)
	switch ctx.Message().(type) {
	case *actor.Started:
		p.metrics, p.name = metricsOf(ctx.ActorSystem()), metricName(ctx.Self().Id)
		p.metrics.trackPool(p, true)
	case *actor.Stopped:
		p.metrics.trackPool(p, false)
	}
	p.publish(false)
}

// serving is the pool's first state. After each message it starts what the target and
// the waiting callers need.
func (p *pool) serving(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.system, p.self = ctx.ActorSystem(), ctx.Self()
		if p.cfg.Load != nil {
			sendAfter(p.system, p.cfg.LoadInterval, p.self, &poolLoadTick{})
		}
	case *poolLoadTick:
		p.trim(ctx)
		sendAfter(p.system, p.cfg.LoadInterval, p.self, &poolLoadTick{})
	case *rolloutStart:
		p.startRollout(ctx, m.props)
	case *messages.Acquire:
		p.acquire(ctx, m)
	case *messages.Release:
		if mb := p.released(ctx, m.PID); mb != nil {
			switch {
			case mb.gen != p.gen:
				p.retire(ctx, mb)
			case p.worn(mb):
				p.closeMember(ctx, mb)
				p.event(ctx, messages.PoolRecycled, mb)
			case p.cfg.Reuse:
				p.makeIdle(ctx, mb)
			default:
				p.closeMember(ctx, mb)
			}
		}
	case *messages.SetTarget:
		p.cfg.Target = max(m.Target, 0)
		p.trim(ctx)
	case *messages.Drain:
		p.behavior.Become(p.draining)
		p.startDrain(ctx, m.Timeout)
		p.checkDrained(ctx)
		return
	case *messages.GetPoolStatus:
		ctx.Respond(p.status(false))
	case *messages.GetSnapshot:
		ctx.Respond(p.info(false))
	case *messages.StateChanged:
		if mb := p.stateChanged(ctx, m); mb != nil {
			p.readyMember(ctx, mb)
		}
	case *messages.Exited:
		p.rolloutFailure(ctx, m)
		p.exited(ctx, m)
		p.failWaiters(ctx)
	case *poolRefill:
		p.refillSet = false
	case *actor.Stopping:
		p.stop(ctx)
		return
	default:
		p.common(ctx)
	}
	p.refill(ctx)
	p.rolloutDone(ctx)
}

// draining starts nothing and closes every process as it comes back; it answers the
// Drain callers when the last one is gone.
func (p *pool) draining(ctx actor.Context) {
	if p.refuse(ctx) {
		return
	}
	switch m := ctx.Message().(type) {
	case *messages.Release:
		if mb := p.released(ctx, m.PID); mb != nil {
			p.closeMember(ctx, mb)
		}
	case *messages.SetTarget:
		p.cfg.Target = max(m.Target, 0)
	case *messages.Drain:
		if ctx.Sender() != nil {
			p.drainedTo = append(p.drainedTo, ctx.Sender())
		}
	case *messages.StateChanged:
		if mb := p.stateChanged(ctx, m); mb != nil {
			p.closeMember(ctx, mb)
		}
	case *messages.Exited:
		p.exited(ctx, m)
	case *poolDrainTimeUp:
		for _, mb := range p.members {
			if mb.state == memberBusy {
				p.closeMember(ctx, mb)
			}
		}
	case *actor.Stopping:
		p.stop(ctx)
		return
	default:
		p.common(ctx)
	}
	p.checkDrained(ctx)
}

// stopping is the state of a pool actor that stops: its processes stop with it, and
// none is replaced.
func (p *pool) stopping(ctx actor.Context) {
	if p.refuse(ctx) {
		return
	}
	switch m := ctx.Message().(type) {
	case *messages.Exited:
		if mb := p.members[m.PID.Id]; mb != nil {
			p.remove(ctx, mb) // stopped with the pool: no failed start
		}
	default:
		p.common(ctx)
	}
}

// refuse answers, for a pool that hands nothing out any more (draining or stopping),
// Acquire with ErrPoolDraining and the status queries; it reports whether the message
// was one of those.
func (p *pool) refuse(ctx actor.Context) bool {
	switch ctx.Message().(type) {
	case *messages.Acquire:
		if ctx.Sender() != nil {
			ctx.Respond(&messages.Acquired{Err: ErrPoolDraining})
		}
	case *messages.GetPoolStatus:
		ctx.Respond(p.status(true))
	case *messages.GetSnapshot:
		ctx.Respond(p.info(true))
	default:
		return false
	}
	return true
}

// memberGone: a member actor stopped, and every event it sent before is handled.
type memberGone struct{ pid *actor.PID }

// common handles what every state handles alike.
func (p *pool) common(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Terminated:
		// Terminated is a system message: it overtakes the member's last events (its
		// Exited, whose failed start counts towards the backoff) still in this mailbox.
		// The member is removed after them.
		ctx.Send(ctx.Self(), &memberGone{pid: m.Who})
	case *memberGone:
		if mb := p.members[m.pid.Id]; mb != nil {
			p.remove(ctx, mb) // it stopped with no Exited (it never ran)
		}
	case *poolWaiterOver:
		if p.dropWaiter(m.w) {
			ctx.Send(m.w.to, &messages.Acquired{Err: ErrAcquireTimeout})
		}
	}
}

// stop enters stopping: the waiting callers are told at once.
func (p *pool) stop(ctx actor.Context) {
	p.behavior.Become(p.stopping)
	p.answerWaiters(ctx, ErrPoolDraining)
}

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

// refill starts processes until idle and starting ones cover the target and the
// waiting callers, within MaxStarting and the backoff.
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
		if len(p.idle)+starting >= want || starting >= p.cfg.MaxStarting {
			return
		}
		if p.cfg.MaxProcesses > 0 && len(p.idle)+starting+p.counts[memberBusy] >= p.cfg.MaxProcesses {
			if !p.retireOldIdle(ctx) { // at the cap: a rolling replacement frees a slot
				return
			}
			continue
		}
		pid := ctx.Spawn(p.props)
		mb := &member{pid: pid, state: memberStarting, gen: p.gen}
		p.members[pid.Id] = mb
		p.counts[memberStarting]++
		p.event(ctx, messages.PoolCreated, mb)
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
func (p *pool) trim(ctx actor.Context) {
	for len(p.idle) > p.target() {
		i := 0
		for j, mb := range p.idle {
			if mb.uses <= p.idle[i].uses {
				i = j
			}
		}
		mb := p.idle[i]
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		p.closeMember(ctx, mb)
	}
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
		p.failures, p.backoffUntil = 0, time.Time{}
		if p.rollout != nil && mb.gen == p.gen {
			p.rollout.failures = 0
		}
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
	p.idle = append(p.idle, mb)
	p.serveWaiters(ctx)
	p.trim(ctx)
}

// exited handles a process that ended: a failed start counts towards the backoff.
func (p *pool) exited(ctx actor.Context, m *messages.Exited) {
	mb := p.members[m.PID.Id]
	if mb == nil {
		return
	}
	if mb.state == memberStarting {
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

// failWaiters tells the waiting callers that starts fail, when nothing under way could
// serve them or as many starts in a row failed as may run at once (starts go on, backing
// off).
func (p *pool) failWaiters(ctx actor.Context) {
	if p.failures > 0 && len(p.idle) == 0 && (p.counts[memberStarting] == 0 || p.failures >= p.cfg.MaxStarting) {
		p.answerWaiters(ctx, fmt.Errorf("%w: %w", ErrStartsFailing, p.lastErr))
	}
}

// answerWaiters fails every waiting Acquire with err.
func (p *pool) answerWaiters(ctx actor.Context, err error) {
	for _, w := range p.waiters {
		w.cancel()
		ctx.Send(w.to, &messages.Acquired{Err: err})
	}
	p.waiters = nil
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

func (p *pool) acquire(ctx actor.Context, m *messages.Acquire) {
	if ctx.Sender() == nil {
		return
	}
	if mb := p.takeIdle(ctx); mb != nil {
		p.handOut(ctx, mb, ctx.Sender())
		return
	}
	w := &waiter{to: ctx.Sender(), cancel: func() {}}
	if !m.Deadline.IsZero() {
		wait := time.Until(m.Deadline)
		if wait <= 0 {
			ctx.Respond(&messages.Acquired{Err: ErrAcquireTimeout})
			return
		}
		w.cancel = sendAfter(p.system, wait, p.self, &poolWaiterOver{w: w})
	}
	p.waiters = append(p.waiters, w)
}

// takeIdle returns the oldest idle process whose OS process still lives. One that died
// (its Exited not yet here) is dropped, never handed out.
func (p *pool) takeIdle(ctx actor.Context) *member {
	for len(p.idle) > 0 {
		mb := p.idle[0]
		p.idle = p.idle[1:]
		switch {
		case mb.gen != p.gen && (p.rollout == nil || p.rollout.switched):
			p.retire(ctx, mb) // never handed out after the switch
		case p.worn(mb):
			p.closeMember(ctx, mb)
			p.event(ctx, messages.PoolRecycled, mb)
		case mb.ospid > 0 && launch.Alive(mb.ospid):
			return mb
		default:
			p.closeMember(ctx, mb)
		}
	}
	return nil
}

func (p *pool) handOut(ctx actor.Context, mb *member, to *actor.PID) {
	p.set(mb, memberBusy)
	mb.uses++
	ctx.Send(to, &messages.Acquired{PID: mb.pid})
	p.event(ctx, messages.PoolAcquired, mb)
}

func (p *pool) serveWaiters(ctx actor.Context) {
	for len(p.waiters) > 0 {
		mb := p.takeIdle(ctx)
		if mb == nil {
			return
		}
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.cancel()
		p.handOut(ctx, mb, w.to)
	}
}

func (p *pool) dropWaiter(w *waiter) bool {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// released returns the busy member pid names, with its release published, or nil.
func (p *pool) released(ctx actor.Context, pid *actor.PID) *member {
	mb := p.members[pid.GetId()]
	if mb == nil || mb.state != memberBusy {
		return nil
	}
	p.event(ctx, messages.PoolReleased, mb)
	return mb
}

// startDrain fails the waiting callers, closes the idle and starting processes and
// bounds the wait for the busy ones.
func (p *pool) startDrain(ctx actor.Context, timeout time.Duration) {
	if ctx.Sender() != nil {
		p.drainedTo = append(p.drainedTo, ctx.Sender())
	}
	p.answerWaiters(ctx, ErrPoolDraining)
	for _, mb := range p.members {
		if mb.state == memberIdle || mb.state == memberStarting {
			p.closeMember(ctx, mb)
		}
	}
	p.idle = nil
	p.drainStop = sendAfter(p.system, timeout, p.self, &poolDrainTimeUp{})
}

// checkDrained answers the Drain callers once no process is left.
func (p *pool) checkDrained(ctx actor.Context) {
	if len(p.members) > 0 || len(ctx.Children()) > 0 {
		return
	}
	if p.drainStop != nil {
		p.drainStop()
		p.drainStop = nil
	}
	for _, to := range p.drainedTo {
		ctx.Send(to, &messages.Drained{})
	}
	p.drainedTo = nil
}

func (p *pool) status(draining bool) *messages.PoolStatus {
	return &messages.PoolStatus{
		Idle: len(p.idle), Busy: p.counts[memberBusy], Starting: p.counts[memberStarting],
		Closing: p.counts[memberClosing], Waiting: len(p.waiters), Target: p.cfg.Target,
		Failures: p.failures, Draining: draining,
	}
}

// info is the pool's answer to GetSnapshot.
func (p *pool) info(draining bool) *messages.PoolInfo {
	info := &messages.PoolInfo{Status: *p.status(draining)}
	for _, mb := range p.members {
		info.Members = append(info.Members, mb.pid)
	}
	slices.SortFunc(info.Members, func(a, b *actor.PID) int { return strings.Compare(a.Id, b.Id) })
	return info
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

// Rollout starts a rolling replacement of pool's processes with cfg (a new binary, say):
// the pool starts replacements (PoolConfig.MaxSurge at a time beyond its target), and as
// each is ready retires an old idle process; busy ones are retired when released. From
// the first new process ready on, Acquire hands out no old process. When
// RolloutFailures new processes in a row fail to start, the pool aborts, closes the new
// ones and keeps the old config. Progress comes as messages.Rollout events. A bad cfg is
// an error matching ErrBadConfig, and nothing changes.
func Rollout(system *actor.ActorSystem, pool *actor.PID, cfg Config) error {
	cfg.Restart = Temporary
	props, err := NewProcess(cfg)
	if err != nil {
		return err
	}
	system.Root.Send(pool, &rolloutStart{props: props})
	return nil
}

func (p *pool) startRollout(ctx actor.Context, props *actor.Props) {
	if p.rollout != nil { // a new config during a rollout: the older new ones go too
		p.rollout.switched = false
	} else {
		p.rollout = &rolloutRun{oldGen: p.gen, oldProps: p.props}
	}
	p.gen++
	p.props = props
	p.rolloutEvent(ctx, messages.RolloutStarted, nil)
}

// surge is how many replacements may start beyond the target: MaxSurge while old
// processes are left to replace.
func (p *pool) surge() int {
	if p.rollout == nil {
		return 0
	}
	return min(p.cfg.MaxSurge, p.old())
}

// old counts the members of an older config still in the pool (closing ones excepted).
func (p *pool) old() int {
	n := 0
	for _, mb := range p.members {
		if mb.gen != p.gen && mb.state != memberClosing {
			n++
		}
	}
	return n
}

// retireOldIdle retires one idle process of an older config, if there is one.
func (p *pool) retireOldIdle(ctx actor.Context) bool {
	for i, mb := range p.idle {
		if mb.gen != p.gen {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.retire(ctx, mb)
			return true
		}
	}
	return false
}

// retire closes a member of an older config.
func (p *pool) retire(ctx actor.Context, mb *member) {
	p.closeMember(ctx, mb)
	p.event(ctx, messages.PoolRetired, mb)
	if p.rollout != nil {
		p.rolloutEvent(ctx, messages.RolloutProgress, nil)
	}
}

// rolloutFailure counts a new process that failed to start; at RolloutFailures in a row
// the rollout is aborted: the new ones go, the old config is back.
func (p *pool) rolloutFailure(ctx actor.Context, m *messages.Exited) {
	mb := p.members[m.PID.Id]
	if p.rollout == nil || mb == nil || mb.state != memberStarting || mb.gen != p.gen {
		return
	}
	p.rollout.failures++
	if p.rollout.failures < p.cfg.RolloutFailures {
		return
	}
	r := p.rollout
	p.rollout = nil
	p.gen, p.props = r.oldGen, r.oldProps
	p.failures, p.backoffUntil = 0, time.Time{} // the old config starts
	for _, x := range p.members {
		if x.gen != p.gen && x != mb && (x.state == memberIdle || x.state == memberStarting) {
			p.closeMember(ctx, x)
		}
	}
	p.idle = slices.DeleteFunc(p.idle, func(x *member) bool { return x.gen != p.gen })
	p.rolloutEvent(ctx, messages.RolloutAborted, fmt.Errorf("%d new processes in a row failed to start: %w", r.failures, failureOf(m)))
}

// rolloutDone ends the rollout once no old process is left.
func (p *pool) rolloutDone(ctx actor.Context) {
	if p.rollout != nil && p.old() == 0 && p.counts[memberStarting] == 0 {
		p.rolloutEvent(ctx, messages.RolloutDone, nil)
		p.rollout = nil
	}
}

func (p *pool) rolloutEvent(ctx actor.Context, kind messages.RolloutKind, err error) {
	ev := &messages.Rollout{Pool: p.self, Kind: kind, Old: p.old(), New: len(p.members) - p.old() - p.counts[memberClosing], Err: err}
	if ctx.Parent() != nil {
		ctx.Send(ctx.Parent(), ev)
	}
	p.system.EventStream.Publish(ev)
	p.metrics.rolloutStep(p.name, kind)
}
