package actortest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Probe is an actor a test talks through: a PID to send to or to use as a sender, a
// parent for the actors it spawns (their events and failures come to it), and a record
// of everything it received, to wait for and to show when an expectation fails.
type Probe struct {
	t      TB
	system *actor.ActorSystem
	// PID is the probe's actor.
	PID *actor.PID

	in     chan any
	unread []any // received, not yet taken by an expectation
	mu     sync.Mutex
	seen   []any
}

type spawnRequest struct {
	props *actor.Props
	name  string
	reply chan spawnResult
}

type watchRequest struct {
	pid  *actor.PID
	done chan struct{}
}

type spawnResult struct {
	pid *actor.PID
	err error
}

// NewProbe spawns a probe in system. Failures of the actors it spawns are handled by
// strategy (protoactor's default, restart, when nil). The probe stops when the test
// ends.
func NewProbe(t TB, system *actor.ActorSystem, strategy actor.SupervisorStrategy) *Probe {
	t.Helper()
	p := &Probe{t: t, system: system, in: make(chan any, 1<<16)}
	opts := []actor.PropsOption{}
	if strategy != nil {
		opts = append(opts, actor.WithSupervisor(strategy))
	}
	p.PID = system.Root.Spawn(actor.PropsFromFunc(p.receive, opts...))
	t.Cleanup(func() { system.Root.Stop(p.PID) })
	return p
}

func (p *Probe) receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
	case *spawnRequest:
		pid, err := ctx.SpawnNamed(m.props, m.name)
		m.reply <- spawnResult{pid, err}
	case *watchRequest:
		ctx.Watch(m.pid)
		close(m.done)
	default:
		select {
		case p.in <- m:
		default:
			p.t.Errorf("probe %s: more than %d messages not yet expected", p.PID.Id, cap(p.in))
		}
	}
}

// TB is what a probe needs of a test: *testing.T and *testing.B have it.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

var _ TB = testing.TB(nil)

// Spawn spawns props as a child of the probe, named name: its events come to the probe
// and its failures go to the probe's strategy.
func (p *Probe) Spawn(props *actor.Props, name string) *actor.PID {
	p.t.Helper()
	reply := make(chan spawnResult, 1)
	p.system.Root.Send(p.PID, &spawnRequest{props: props, name: name, reply: reply})
	r := <-reply
	if r.err != nil {
		p.t.Fatalf("probe: spawn %s: %v", name, r.err)
	}
	return r.pid
}

// Send sends msg to pid with the probe as the sender, so replies come to the probe.
func (p *Probe) Send(pid *actor.PID, msg any) {
	p.system.Root.RequestWithCustomSender(pid, msg, p.PID)
}

// Watch makes the probe receive *actor.Terminated when pid stops.
func (p *Probe) Watch(pid *actor.PID) {
	done := make(chan struct{})
	p.system.Root.Send(p.PID, &watchRequest{pid: pid, done: done})
	<-done
}

// Expect returns the first message not yet taken that match accepts, waiting up to
// timeout for it. Messages it passes over stay for later expectations, so the order in
// which a test expects things need not be the order they arrive in (protoactor delivers
// system messages, such as Terminated, ahead of user messages). On timeout it fails the
// test, listing every message received.
func (p *Probe) Expect(timeout time.Duration, what string, match func(any) bool) any {
	p.t.Helper()
	m, ok := p.await(timeout, match)
	if !ok {
		p.t.Fatalf("probe: no %s within %v; received:\n%s", what, timeout, p.History())
	}
	return m
}

// await returns the first message not yet taken that match accepts, waiting up to d;
// the messages it passes over stay for later.
func (p *Probe) await(d time.Duration, match func(any) bool) (any, bool) {
	if m, ok := p.take(match); ok {
		return m, true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case m := <-p.in:
			p.record(m)
			if match(m) {
				return m, true
			}
			p.unread = append(p.unread, m)
		case <-deadline.C:
			return nil, false
		}
	}
}

func (p *Probe) take(match func(any) bool) (any, bool) {
	for i, m := range p.unread {
		if match(m) {
			p.unread = append(p.unread[:i:i], p.unread[i+1:]...)
			return m, true
		}
	}
	return nil, false
}

// ExpectType waits up to timeout for a message of type T for which every match holds,
// passing over others, and returns it.
func ExpectType[T any](p *Probe, timeout time.Duration, match ...func(T) bool) T {
	p.t.Helper()
	var zero T
	m := p.Expect(timeout, fmt.Sprintf("%T", zero), func(m any) bool {
		v, ok := m.(T)
		if !ok {
			return false
		}
		for _, f := range match {
			if !f(v) {
				return false
			}
		}
		return true
	})
	v, _ := m.(T)
	return v
}

// ExpectNoMessage fails the test if a message that match accepts (any message when
// match is nil) is waiting or arrives within d.
func (p *Probe) ExpectNoMessage(d time.Duration, match func(any) bool) {
	p.t.Helper()
	if match == nil {
		match = func(any) bool { return true }
	}
	if m, ok := p.await(d, match); ok {
		p.t.Fatalf("probe: unexpected %T %+v; received:\n%s", m, m, p.History())
	}
}

// Drain returns every message not yet taken, waiting for none, and takes them.
func (p *Probe) Drain() []any {
	for {
		select {
		case m := <-p.in:
			p.record(m)
			p.unread = append(p.unread, m)
		default:
			out := p.unread
			p.unread = nil
			return out
		}
	}
}

func (p *Probe) record(m any) {
	p.mu.Lock()
	p.seen = append(p.seen, m)
	p.mu.Unlock()
}

// History lists the messages received so far, one a line.
func (p *Probe) History() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for i, m := range p.seen {
		fmt.Fprintf(&b, "  %d: %T %+v\n", i, m, m)
	}
	if len(p.seen) == 0 {
		b.WriteString("  (nothing)\n")
	}
	return b.String()
}
