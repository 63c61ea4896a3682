package actors

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// Backoff configures [NewStrategy]: exponential backoff with jitter between restarts,
// and an intensity limit.
type Backoff struct {
	// Initial is the delay before the first restart; Max caps the delay. Each
	// consecutive failure multiplies the delay by Multiplier (2 when 0).
	Initial, Max time.Duration
	Multiplier   float64
	// Jitter spreads each delay by up to ±Jitter of itself (0.2 means ±20%).
	Jitter float64
	// ResetAfter: a child that ran this long since its last failure starts again at
	// Initial.
	ResetAfter time.Duration
	// MaxRestarts and Window are the intensity limit: a failure that makes more than
	// MaxRestarts failures within Window stops the child (or escalates, with Escalate)
	// instead of restarting it. MaxRestarts 0 means no limit.
	MaxRestarts int
	Window      time.Duration
	Escalate    bool
	// AllForOne restarts (or stops) every child of the supervisor when one fails.
	AllForOne bool
}

// DefaultBackoff starts at 100 ms, doubles to at most 30 s with ±20% jitter, forgets
// failures after a minute of stable running, and gives up after 5 failures in a minute.
var DefaultBackoff = Backoff{
	Initial: 100 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2,
	ResetAfter: time.Minute, MaxRestarts: 5, Window: time.Minute,
}

// NewStrategy returns a supervisor strategy that restarts failed children after an
// exponentially growing, jittered delay, and stops or escalates at the intensity limit.
// Each restart sends a [messages.Restarting] to the supervising actor and publishes it on
// the EventStream, and hitting the limit a [messages.RestartLimit]. Give it to a parent with actor.WithSupervisor (a
// [Tree] does), or to an actor system's guardians with actor.WithGuardian.
func NewStrategy(b Backoff) actor.SupervisorStrategy {
	if b.Multiplier <= 0 {
		b.Multiplier = 2
	}
	return &backoffStrategy{b: b}
}

type backoffStrategy struct{ b Backoff }

// Delay returns the delay before restart number attempt (1 for the first), without
// jitter.
func (b Backoff) Delay(attempt int) time.Duration {
	m := b.Multiplier
	if m <= 0 {
		m = 2
	}
	d := float64(b.Initial) * math.Pow(m, float64(attempt-1))
	if b.Max > 0 && d > float64(b.Max) {
		d = float64(b.Max)
	}
	return time.Duration(d)
}

// Jittered returns the delay before restart number attempt with the jitter applied: the
// one computation of a backoff delay, for the strategy and the pool alike.
func (b Backoff) Jittered(attempt int) time.Duration {
	delay := b.Delay(attempt)
	if b.Jitter > 0 && delay > 0 {
		delay += time.Duration((rand.Float64()*2 - 1) * b.Jitter * float64(delay))
	}
	return delay
}

// HandleFailure implements actor.SupervisorStrategy.
func (s *backoffStrategy) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason any, message any) {
	cause, _ := reason.(error)
	forget := max(s.b.ResetAfter, s.b.Window)
	if forget > 0 && rs.FailureCount() > 0 && rs.NumberOfFailures(forget) == 0 {
		rs.Reset() // stable long enough: start over
	}
	rs.Fail()
	targets := []*actor.PID{child}
	if s.b.AllForOne {
		targets = sup.Children()
	}
	if s.b.MaxRestarts > 0 && rs.NumberOfFailures(s.b.Window) > s.b.MaxRestarts {
		metricsOf(system).limitHit(metricName(child.Id))
		publishTo(system, sup, &messages.RestartLimit{PID: child, Failures: rs.NumberOfFailures(s.b.Window),
			Window: s.b.Window, Escalated: s.b.Escalate, Cause: cause})
		if s.b.Escalate {
			sup.EscalateFailure(reason, message)
		} else {
			sup.StopChildren(targets...)
		}
		return
	}
	attempt := rs.FailureCount()
	delay := s.b.Jittered(attempt)
	metricsOf(system).restarted(metricName(child.Id))
	publishTo(system, sup, &messages.Restarting{PID: child, Attempt: attempt, Delay: delay, Cause: cause})
	if delay <= 0 {
		sup.RestartChildren(targets...)
		return
	}
	time.AfterFunc(delay, func() { sup.RestartChildren(targets...) })
}

// publishTo sends a strategy's event to the supervising actor (a Tree forwards it to its
// own parent) and publishes it on the EventStream. A guardian supervises no actor: there
// the EventStream alone hears it.
func publishTo(system *actor.ActorSystem, sup actor.Supervisor, ev any) {
	if a, ok := sup.(interface{ Self() *actor.PID }); ok {
		system.Root.Send(a.Self(), ev)
	}
	system.EventStream.Publish(ev)
}
