package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

var (
	// ErrPoolDraining answers an Acquire to a pool that is draining.
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
}

// NewPool returns the props of a pool actor, or an error matching [ErrBadConfig]. Use
// [Acquire] and [Release] with it; send messages.SetTarget, messages.Drain and
// messages.GetPoolStatus to it.
func NewPool(cfg PoolConfig) (*actor.Props, error) {
	if cfg.Target < 0 || cfg.MaxStarting < 0 {
		return nil, fmt.Errorf("%w: negative Target or MaxStarting", ErrBadConfig)
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
		return &pool{cfg: cfg, props: props, members: map[string]*member{}}
	}, actor.WithSupervisor(stop)), nil
}

type memberState int

const (
	memberStarting memberState = iota
	memberIdle
	memberBusy
	memberClosing
)

type member struct {
	pid   *actor.PID
	ospid int
	state memberState
}

type waiter struct {
	to     *actor.PID
	cancel func()
}

type pool struct {
	cfg     PoolConfig
	props   *actor.Props
	system  *actor.ActorSystem
	self    *actor.PID
	members map[string]*member
	idle    []*member // oldest first
	waiters []*waiter

	failures     int
	backoffUntil time.Time
	refillSet    bool
	lastErr      error

	draining  bool
	stopping  bool // the pool actor is stopping: spawn nothing more
	drainedTo []*actor.PID
	drainStop func()
}

type (
	poolRefill      struct{}
	poolWaiterOver  struct{ w *waiter }
	poolDrainTimeUp struct{}
)

func (p *pool) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.system, p.self = ctx.ActorSystem(), ctx.Self()
		p.refill(ctx)
	case *actor.Stopping:
		p.stopping = true // children stopped from here on would otherwise be replaced
	case *messages.Acquire:
		p.acquire(ctx, m)
	case *messages.Release:
		p.release(ctx, m.PID)
	case *messages.SetTarget:
		p.cfg.Target = max(m.Target, 0)
		p.trim(ctx)
		p.refill(ctx)
	case *messages.Drain:
		p.drain(ctx, m.Timeout)
	case *messages.GetPoolStatus:
		ctx.Respond(p.status())
	case *messages.StateChanged:
		p.stateChanged(ctx, m)
	case *messages.Exited:
		p.exited(ctx, m)
	case *actor.Terminated:
		p.gone(ctx, m.Who)
	case *poolRefill:
		p.refillSet = false
		p.refill(ctx)
	case *poolWaiterOver:
		if p.dropWaiter(m.w) {
			ctx.Send(m.w.to, &messages.Acquired{Err: ErrAcquireTimeout})
		}
	case *poolDrainTimeUp:
		for _, mb := range p.members {
			if mb.state == memberBusy {
				p.closeMember(ctx, mb)
			}
		}
	}
}

func (p *pool) event(ctx actor.Context, kind messages.PoolEventKind, mb *member) {
	ev := &messages.PoolEvent{Pool: p.self, Kind: kind, Process: mb.pid, OSPid: mb.ospid}
	if ctx.Parent() != nil {
		ctx.Send(ctx.Parent(), ev)
	}
	p.system.EventStream.Publish(ev)
}

func (p *pool) count(s memberState) int {
	n := 0
	for _, mb := range p.members {
		if mb.state == s {
			n++
		}
	}
	return n
}

// refill starts processes until idle and starting ones cover the target and the
// waiting callers, within MaxStarting and the backoff.
func (p *pool) refill(ctx actor.Context) {
	if p.draining || p.stopping {
		return
	}
	if wait := time.Until(p.backoffUntil); wait > 0 {
		if !p.refillSet {
			p.refillSet = true
			sendAfter(p.system, wait, p.self, &poolRefill{})
		}
		return
	}
	for {
		starting := p.count(memberStarting)
		want := p.cfg.Target + len(p.waiters)
		if len(p.idle)+starting >= want || starting >= p.cfg.MaxStarting {
			return
		}
		pid := ctx.Spawn(p.props)
		mb := &member{pid: pid, state: memberStarting}
		p.members[pid.Id] = mb
		p.event(ctx, messages.PoolCreated, mb)
	}
}

// trim closes idle processes above the target.
func (p *pool) trim(ctx actor.Context) {
	for len(p.idle) > p.cfg.Target {
		mb := p.idle[0]
		p.idle = p.idle[1:]
		p.closeMember(ctx, mb)
	}
}

func (p *pool) closeMember(ctx actor.Context, mb *member) {
	mb.state = memberClosing
	ctx.Send(mb.pid, &messages.Close{Reason: "pool"})
}

func (p *pool) stateChanged(ctx actor.Context, m *messages.StateChanged) {
	mb := p.members[m.PID.Id]
	if mb == nil {
		return
	}
	switch m.To {
	case messages.Initializing:
		mb.ospid = m.OSPid
		p.event(ctx, messages.PoolStarted, mb)
	case messages.Running:
		if mb.state != memberStarting {
			return
		}
		p.failures, p.backoffUntil = 0, time.Time{}
		mb.state = memberIdle
		p.event(ctx, messages.PoolReady, mb)
		if p.draining {
			p.closeMember(ctx, mb)
			return
		}
		p.idle = append(p.idle, mb)
		p.serveWaiters(ctx)
		p.trim(ctx)
		p.refill(ctx) // a start slot is free again
	}
}

// exited handles a process that ended: a failed start backs off, anything else is
// replaced.
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
	if p.failures > 0 && len(p.idle) == 0 && (p.count(memberStarting) == 0 || p.failures >= p.cfg.MaxStarting) {
		// Nothing under way could serve the waiting callers, or as many starts in a row
		// failed as may run at once: tell them now (starts go on, backing off).
		for _, w := range p.waiters {
			w.cancel()
			ctx.Send(w.to, &messages.Acquired{Err: fmt.Errorf("%w: %w", ErrStartsFailing, p.lastErr)})
		}
		p.waiters = nil
	}
	p.refill(ctx)
}

// gone handles a process actor that stopped (its Exited came first, or it never ran).
func (p *pool) gone(ctx actor.Context, who *actor.PID) {
	if mb := p.members[who.Id]; mb != nil {
		p.remove(ctx, mb)
		p.refill(ctx)
	}
	p.checkDrained(ctx)
}

func (p *pool) remove(ctx actor.Context, mb *member) {
	if _, ok := p.members[mb.pid.Id]; !ok {
		return
	}
	delete(p.members, mb.pid.Id)
	for i, x := range p.idle {
		if x == mb {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	p.event(ctx, messages.PoolClosed, mb)
	p.checkDrained(ctx)
}

func (p *pool) acquire(ctx actor.Context, m *messages.Acquire) {
	if ctx.Sender() == nil {
		return
	}
	if p.draining {
		ctx.Respond(&messages.Acquired{Err: ErrPoolDraining})
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
	p.refill(ctx)
}

// takeIdle returns the oldest idle process whose OS process still lives. One that died
// (its Exited not yet here) is dropped, never handed out.
func (p *pool) takeIdle(ctx actor.Context) *member {
	for len(p.idle) > 0 {
		mb := p.idle[0]
		p.idle = p.idle[1:]
		if mb.ospid > 0 && launch.Alive(mb.ospid) {
			return mb
		}
		p.closeMember(ctx, mb)
	}
	return nil
}

func (p *pool) handOut(ctx actor.Context, mb *member, to *actor.PID) {
	mb.state = memberBusy
	ctx.Send(to, &messages.Acquired{PID: mb.pid})
	p.event(ctx, messages.PoolAcquired, mb)
	p.refill(ctx)
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

func (p *pool) release(ctx actor.Context, pid *actor.PID) {
	mb := p.members[pid.GetId()]
	if mb == nil || mb.state != memberBusy {
		return
	}
	p.event(ctx, messages.PoolReleased, mb)
	if !p.cfg.Reuse || p.draining {
		p.closeMember(ctx, mb)
		p.refill(ctx)
		return
	}
	mb.state = memberIdle
	p.idle = append(p.idle, mb)
	p.serveWaiters(ctx)
	p.trim(ctx)
}

func (p *pool) drain(ctx actor.Context, timeout time.Duration) {
	if ctx.Sender() != nil {
		p.drainedTo = append(p.drainedTo, ctx.Sender())
	}
	if !p.draining {
		p.draining = true
		for _, w := range p.waiters {
			w.cancel()
			ctx.Send(w.to, &messages.Acquired{Err: ErrPoolDraining})
		}
		p.waiters = nil
		for _, mb := range p.members {
			if mb.state == memberIdle || mb.state == memberStarting {
				p.closeMember(ctx, mb)
			}
		}
		p.idle = nil
		p.drainStop = sendAfter(p.system, timeout, p.self, &poolDrainTimeUp{})
	}
	p.checkDrained(ctx)
}

func (p *pool) checkDrained(ctx actor.Context) {
	if !p.draining || len(p.members) > 0 || len(ctx.Children()) > 0 {
		return
	}
	if p.drainStop != nil {
		p.drainStop()
	}
	for _, to := range p.drainedTo {
		ctx.Send(to, &messages.Drained{})
	}
	p.drainedTo = nil
}

func (p *pool) status() *messages.PoolStatus {
	return &messages.PoolStatus{
		Idle: len(p.idle), Busy: p.count(memberBusy), Starting: p.count(memberStarting),
		Closing: p.count(memberClosing), Waiting: len(p.waiters), Target: p.cfg.Target,
		Failures: p.failures, Draining: p.draining,
	}
}
