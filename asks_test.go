package procsup_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages"
)

// askErrorTyped reports whether err is one of the errors actors.Ask documents for a
// process that ends under it.
func askErrorTyped(err error) bool {
	return err == nil || errors.Is(err, actors.ErrNotRunning) || errors.Is(err, actors.ErrProcessEnded) ||
		errors.Is(err, actors.ErrChildNotReading)
}

// An Ask sent the moment the actor is spawned is held until the process runs, then
// answered.
func TestAskBeforeRunningIsHeld(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, workerConfig("init100ms", slogWith(rec)), nil)
	// A Send sent as early is held too, and sent in order: the child logs for "log".
	system.Root.Send(pid, &messages.Send{Kind: "log"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body, err := actors.Ask(ctx, system, pid, "echo", []byte("early"))
	if err != nil || string(body) != "echo:early" {
		t.Fatalf("ask before running: %q, %v", body, err)
	}
	running(probe)
	within(t, 10*time.Second, "the held Send's log record", func() bool { return rec.count("child says hello") == 1 })
}

// Asks held for a process whose initialization fails are failed, with the reason.
func TestHeldAsksFailWhenInitializationFails(t *testing.T) {
	system := newSystem(t)
	_, pid := spawn(t, system, workerConfig("initfail", nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := actors.Ask(ctx, system, pid, "echo", nil)
	if !errors.Is(err, actors.ErrNotRunning) || !errors.Is(err, messages.ReasonInitFailed) {
		t.Fatalf("ask: %v, want ErrNotRunning with the init failure", err)
	}
}

// MaxHeld bounds what waits for a process that is not running yet.
func TestHeldAsksAreBounded(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("initwait", nil)
	cfg.MaxHeld = 2
	probe, pid := spawn(t, system, cfg, nil)
	for range 3 {
		probe.Send(pid, &messages.Ask{Kind: "echo"})
	}
	r := actortest.ExpectType[*messages.Response](probe, 10*time.Second)
	if !errors.Is(r.Err, actors.ErrHeldFull) {
		t.Fatalf("third ask: %v, want ErrHeldFull", r.Err)
	}
	system.Root.Send(pid, &messages.Close{})
	for range 2 {
		r := actortest.ExpectType[*messages.Response](probe, 10*time.Second)
		if !errors.Is(r.Err, actors.ErrNotRunning) || !errors.Is(r.Err, messages.ReasonClosed) {
			t.Fatalf("held ask after close: %v", r.Err)
		}
	}
	probe.ExpectNoMessage(200*time.Millisecond, func(m any) bool { _, ok := m.(*messages.Response); return ok })
}

// Hundreds of Asks in flight when the process is killed, and more while the actor stops
// and after it stopped: each gets exactly one answer, long before its deadline, and each
// error is a documented one.
func TestAsksDuringKillAnsweredExactlyOnce(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("healthy", nil), nil)
	running(probe)
	const n = 300
	for i := range n {
		probe.Send(pid, &messages.Ask{Kind: "echo", Body: []byte(fmt.Sprint(i))})
	}
	system.Root.Send(pid, &messages.Kill{})
	for range n {
		probe.Send(pid, &messages.Ask{Kind: "echo"})
	}
	terminated(probe, pid)
	for range n {
		probe.Send(pid, &messages.Ask{Kind: "echo"})
	}
	isAnswer := func(m any) bool {
		switch m.(type) {
		case *messages.Response, *actor.DeadLetterResponse:
			return true
		}
		return false
	}
	var ok, failed, dead int
	for range 3 * n {
		switch r := probe.Expect(20*time.Second, "an answer to every Ask", isAnswer).(type) {
		case *messages.Response:
			if !askErrorTyped(r.Err) {
				t.Fatalf("an Ask failed with an undocumented error: %v", r.Err)
			}
			if r.Err == nil {
				ok++
			} else {
				failed++
			}
		case *actor.DeadLetterResponse:
			dead++
		}
	}
	probe.ExpectNoMessage(300*time.Millisecond, isAnswer)
	if dead == 0 || failed == 0 {
		t.Fatalf("answers: %d replies, %d failed, %d dead letters: the Kill did not land among the Asks", ok, failed, dead)
	}
	t.Logf("answers: %d replies, %d failed, %d dead letters", ok, failed, dead)
}

// Asks that reach the actor while it stops (its stop waits for the process) are
// answered, and actors.Ask to a stopped actor fails at once with ErrNotRunning.
func TestAskWhileStoppingAndAfter(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("ignoreshutdown", nil)
	cfg.CloseTimeout = 500 * time.Millisecond
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	stopped := stopInBackground(system, pid)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, err := actors.Ask(ctx, system, pid, "echo", nil)
		if !askErrorTyped(err) {
			t.Fatalf("ask while stopping: %v", err)
		}
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatal(err)
			}
			if _, err := actors.Ask(ctx, system, pid, "echo", nil); !errors.Is(err, actors.ErrNotRunning) {
				t.Fatalf("ask to a stopped actor: %v, want ErrNotRunning", err)
			}
			if _, err := actors.Status(ctx, system, pid); !errors.Is(err, actors.ErrNotRunning) {
				t.Fatalf("status of a stopped actor: %v, want ErrNotRunning", err)
			}
			return
		default:
		}
	}
}

// A child that dies under a stream of Asks: every one fails with a documented error,
// never a raw "broken pipe"; one that finds the process ended says why it ended.
func TestAskErrorsAreTypedWhileTheChildDies(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("healthy", nil), nil)
	run := running(probe)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	signal(t, run.OSPid, syscall.SIGKILL)
	for {
		_, err := actors.Ask(ctx, system, pid, "echo", nil)
		if !askErrorTyped(err) {
			t.Fatalf("ask while the child dies: %v", err)
		}
		if errors.Is(err, actors.ErrProcessEnded) && !errors.Is(err, messages.ReasonCrashed) {
			t.Fatalf("ask while the child dies: %v, want the end's reason", err)
		}
		if errors.Is(err, actors.ErrNotRunning) {
			break
		}
	}
	if ex := exited(probe); ex.Reason != messages.ReasonCrashed {
		t.Fatalf("exited: %v", ex)
	}
	// A request that kills the child: the asker learns the process ended, and why.
	_, pid2 := spawn(t, system, workerConfig("healthy", nil), nil)
	_, err := actors.Ask(ctx, system, pid2, "crash", nil)
	if !errors.Is(err, actors.ErrProcessEnded) || !errors.Is(err, messages.ReasonCrashed) {
		t.Fatalf("ask that crashes the child: %v, want ErrProcessEnded with the crash", err)
	}
	// Asks to a tree are refused, not left unanswered.
	tree := system.Root.Spawn(actors.NewTree(nil))
	stopAtEnd(t, system, tree)
	if _, err := actors.Ask(ctx, system, tree, "echo", nil); !errors.Is(err, actors.ErrNotProcess) {
		t.Fatalf("ask to a tree: %v, want ErrNotProcess", err)
	}
}

// A cancelled context ends the wait, and the late answer goes nowhere.
func TestAskHonoursItsContext(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("initwait", nil), nil)
	actortest.ExpectType(probe, 10*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Initializing })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := actors.Ask(ctx, system, pid, "echo", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ask: %v, want the context's deadline", err)
	}
}

// A call waiting for a reply that never comes ends with its ctx, and the next calls,
// with and without a deadline, are answered: the cancelled call's pending request is
// forgotten, and its late reply, if any, goes nowhere.
func TestCallCancelledWhileWaitingThenAnswered(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, workerConfig("healthy", slogWith(rec)), nil)
	running(probe)
	for round := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // beyond WriteTimeout
		ended := make(chan error, 1)
		go func() {
			_, err := actors.Ask(ctx, system, pid, "hang", nil)
			ended <- err
		}()
		within(t, 10*time.Second, "the child's hanging request", func() bool { return rec.count("hanging") == round+1 })
		cancel()
		if err := <-ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: the cancelled call: %v, want context.Canceled", round, err)
		}
		body, err := actors.Ask(context.Background(), system, pid, "echo", []byte("after"))
		if err != nil || string(body) != "echo:after" {
			t.Fatalf("round %d: the next call: %q, %v", round, body, err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		body, err = actors.Ask(ctx, system, pid, "echo", []byte("again"))
		cancel()
		if err != nil || string(body) != "echo:again" {
			t.Fatalf("round %d: a call with a deadline: %q, %v", round, body, err)
		}
	}
}

// Facing a child that does not read, a call whose ctx ends before WriteTimeout ends with
// its ctx, and the request it began is finished or failed alone: after WriteTimeout the
// child is killed as not reading. A call without a deadline gets the write's failure.
func TestCallToAChildThatDoesNotRead(t *testing.T) {
	system := newSystem(t)
	cfg := rawConfig("noread")
	cfg.PingInterval, cfg.PingTimeout = 0, 0
	cfg.WriteTimeout = 3 * time.Second
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	big := make([]byte, 8<<20) // far more than a socket buffer holds
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := actors.Ask(ctx, system, pid, "echo", big); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call with a short deadline: %v, want context.DeadlineExceeded", err)
	}
	ex := exited(probe) // the request's write gave up after WriteTimeout
	if !errors.Is(ex.Err, actors.ErrChildNotReading) {
		t.Fatalf("exited: %v", ex)
	}

	probe, pid = spawn(t, system, cfg, nil)
	running(probe)
	if _, err := actors.Ask(context.Background(), system, pid, "echo", big); !errors.Is(err, actors.ErrChildNotReading) {
		t.Fatalf("a call without a deadline: %v, want ErrChildNotReading", err)
	}
	if ex := exited(probe); !errors.Is(ex.Err, actors.ErrChildNotReading) {
		t.Fatalf("exited: %v", ex)
	}
}

// Many callers asking at once, half with a deadline and half without, while
// the process is killed: every call returns, each with a reply or a documented error.
func TestConcurrentCallsDuringKill(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("healthy", nil), nil)
	running(probe)
	var replies atomic.Int64
	errs := make(chan error, 40)
	for i := range cap(errs) {
		ctx := context.Background()
		if i%2 == 1 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Minute)
			defer cancel()
		}
		go func() {
			for {
				if _, err := actors.Ask(ctx, system, pid, "echo", []byte("x")); err != nil {
					errs <- err
					return
				}
				replies.Add(1)
			}
		}()
	}
	within(t, 20*time.Second, "replies to the callers", func() bool { return replies.Load() >= 2000 })
	system.Root.Send(pid, &messages.Kill{})
	for range cap(errs) {
		select {
		case err := <-errs:
			if !errors.Is(err, actors.ErrNotRunning) && !errors.Is(err, actors.ErrProcessEnded) {
				t.Fatalf("a call ended with an undocumented error: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a call did not return after the kill")
		}
	}
	exited(probe)
}
