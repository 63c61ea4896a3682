package actors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
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
	// Target is how many initialized processes the pool keeps: idle ones, and with Reuse
	// busy ones too (they come back). Beyond it the pool starts a process for a caller
	// that would wait.
	Target int
	// Reuse returns a released process to idle; without it a released process is
	// closed (single use).
	Reuse bool
	// IdleTimeout is how long a process beyond the target may stay idle before the pool
	// closes it (with Reuse: under steady load a released process is kept for the next
	// caller); 0 means 30 s.
	IdleTimeout time.Duration
	// StableAfter is how long a process must stay up after it is ready to count as a
	// good start: one that ends unasked sooner is a failed start (backoff, Failures,
	// health; during a rollout, a rollout failure); 0 means 5 s.
	StableAfter time.Duration
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
	// RolloutFailures is how many new processes of a rolling replacement may fail (to
	// start, or by ending unasked within StableAfter of their ready) before it is aborted
	// and the old config restored; 0 means 3.
	RolloutFailures int
}

// The pool's defaults.
const (
	DefaultPoolIdleTimeout = 30 * time.Second
	DefaultPoolStableAfter = 5 * time.Second
)

// NewPool returns the props of a pool actor, or an error matching [ErrBadConfig]. Use
// [Acquire] and [Release] with it; send messages.SetTarget, messages.Drain and
// messages.GetPoolStatus to it.
func NewPool(cfg PoolConfig) (*actor.Props, error) {
	if cfg.Target < 0 || cfg.MaxStarting < 0 || cfg.MaxUses < 0 || cfg.MaxAge < 0 || cfg.MaxProcesses < 0 ||
		cfg.LoadInterval < 0 || cfg.MaxSurge < 0 || cfg.RolloutFailures < 0 || cfg.IdleTimeout < 0 ||
		cfg.StableAfter < 0 {
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
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultPoolIdleTimeout
	}
	if cfg.StableAfter == 0 {
		cfg.StableAfter = DefaultPoolStableAfter
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
		p := &pool{cfg: cfg, props: props, members: map[string]*member{}, print: configPrint(cfg.Process)}
		p.behavior.Become(p.serving)
		return p
	}, actor.WithSupervisor(stop)), nil
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
	idleTickSet  bool
	lastErr      error

	drainedTo []*actor.PID // who asked to drain, answered when the last process is gone
	drainStop func()

	gen     int         // the current config's generation (props are that config's)
	print   string      // configPrint of the current config
	started time.Time   // when the pool started: kept members' names begin with it
	named   int         // kept members named so far
	rollout *rolloutRun // the rolling replacement under way, or nil
	// rolloutAborted is why the last rollout was aborted, until a later one is done.
	rolloutAborted string

	metrics   *instruments // nil without a MeterProvider
	name      string       // the metrics' label
	published atomic.Pointer[messages.PoolStatus]
}

type (
	poolRefill      struct{}
	poolWaiterOver  struct{ w *waiter }
	poolDrainTimeUp struct{}
	poolLoadTick    struct{}
	poolIdleTick    struct{}                 // idle processes beyond the target may have timed out
	memberStable    struct{ pid *actor.PID } // a member has been up StableAfter since it was ready
	// rolloutStart brings a rolling replacement's new config (Rollout).
	rolloutStart struct {
		props *actor.Props
		print string
	}
)

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
		p.system, p.self, p.started = ctx.ActorSystem(), ctx.Self(), time.Now()
		if p.cfg.Load != nil {
			sendAfter(p.system, p.cfg.LoadInterval, p.self, &poolLoadTick{})
		}
		p.adoptMembers(ctx)
	case *poolLoadTick:
		p.trim(ctx)
		sendAfter(p.system, p.cfg.LoadInterval, p.self, &poolLoadTick{})
	case *rolloutStart:
		p.startRollout(ctx, m.props, m.print)
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
	case *memberStable:
		if mb := p.members[m.pid.Id]; mb != nil && mb.state != memberClosing {
			mb.stable = true
			p.failures = 0
		}
	case *poolIdleTick:
		p.idleTickSet = false
		p.trimIdle(ctx)
	}
}

// stop enters stopping: the waiting callers are told at once.
func (p *pool) stop(ctx actor.Context) {
	p.behavior.Become(p.stopping)
	p.answerWaiters(ctx, ErrPoolDraining)
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
	st := &messages.PoolStatus{
		Idle: len(p.idle), Busy: p.counts[memberBusy], Starting: p.counts[memberStarting],
		Closing: p.counts[memberClosing], Waiting: len(p.waiters), Target: p.cfg.Target,
		Failures: p.failures, Draining: draining, RolloutAborted: p.rolloutAborted,
	}
	if p.rollout != nil {
		st.RolloutFailures = p.rollout.failures
	}
	return st
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
