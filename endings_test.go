package procsup_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// recordingStrategy stops a failed child and hands the failure to failures.
func recordingStrategy(failures chan<- any) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(0, 0, func(reason any) actor.Directive {
		failures <- reason
		return actor.StopDirective
	})
}

// A child that exits before its InitializeResponse, with any code, failed its
// initialization, under every restart policy (Temporary reports it and stops).
func TestExitBeforeInitializingIsAFailedInitialization(t *testing.T) {
	system := newSystem(t)
	for _, mode := range []string{"initcrash", "initexit0"} {
		for _, policy := range []actors.RestartPolicy{actors.Permanent, actors.Transient, actors.Temporary} {
			failures := make(chan any, 1)
			cfg := workerConfig(mode, nil)
			cfg.Restart = policy
			probe, pid := spawn(t, system, cfg, recordingStrategy(failures))
			ex := exited(probe)
			if ex.Reason != messages.ReasonInitFailed || ex.Killed {
				t.Fatalf("%s, %v: exited %v", mode, policy, ex)
			}
			terminated(probe, pid)
			select {
			case f := <-failures:
				if policy == actors.Temporary || !errors.Is(f.(error), messages.ReasonInitFailed) {
					t.Fatalf("%s, %v: the strategy got %v", mode, policy, f)
				}
			default:
				if policy != actors.Temporary {
					t.Fatalf("%s, %v: no failure reached the strategy", mode, policy)
				}
			}
		}
	}
}

// A child that crashes right after its InitializeResponse initialized: its end is a
// crash, never a failed initialization, whichever reaches the actor first, the
// InitializeResponse or the exit.
func TestCrashRightAfterInitializingIsACrash(t *testing.T) {
	system := newSystem(t)
	cfg := rawConfig("initthencrash")
	cfg.PingInterval, cfg.PingTimeout = 0, 0
	for i := range 100 {
		probe, pid := spawn(t, system, cfg, nil)
		if ex := exited(probe); ex.Reason != messages.ReasonCrashed || ex.ExitCode != 3 {
			t.Fatalf("run %d: exited %v, want a crash with exit code 3", i, ex)
		}
		terminated(probe, pid)
	}
}

// A failed initialization ends the same way every time: the child that reported the
// error exits by itself (code 1) within its grace, and is not killed.
func TestFailedInitializationEndsTheSameWayEveryTime(t *testing.T) {
	system := newSystem(t)
	for range 5 {
		probe, _ := spawn(t, system, workerConfig("initfail", nil), nil)
		ex := exited(probe)
		if ex.Reason != messages.ReasonInitFailed || ex.ExitCode != childproc.ExitFailure || ex.Killed ||
			ex.Err == nil || ex.Err.Error() != "model file missing" {
			t.Fatalf("exited: %v", ex)
		}
	}
}

// Stopping a process, or its tree, while the child initializes ends it at once: the
// child hears the ShutdownRequest during Init, and is not killed after CloseTimeout,
// whether its Init returns when its context is cancelled or ignores it (a sleep here, a
// model load in C for real: the runtime exits after childproc.InitCancelGrace).
func TestStopWhileInitializingIsPrompt(t *testing.T) {
	system := newSystem(t)
	initializing := func(p *actortest.Probe) {
		actortest.ExpectType(p, 10*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Initializing })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, mode := range []string{"initwait", "initslow"} {
		cfg := workerConfig(mode, nil)
		cfg.InitializeTimeout, cfg.CloseTimeout = time.Minute, time.Minute
		for _, how := range []string{"close", "stop", "tree"} {
			probe := actortest.NewProbe(t, system, nil)
			var target *actor.PID
			if how == "tree" {
				target = probe.Spawn(actors.NewTree(nil, actors.Spec{Name: "w", Props: mustProps(cfg)}), "tree")
			} else {
				target = probe.Spawn(mustProps(cfg), "proc")
			}
			stopAtEnd(t, system, target)
			initializing(probe)
			if how == "close" {
				system.Root.Send(target, &messages.Close{})
			} else if err := actors.StopAndWait(ctx, system, target); err != nil {
				t.Fatal(err)
			}
			ex := exited(probe)
			if ex.Reason != messages.ReasonClosed || ex.Killed || ex.ExitCode != 0 {
				t.Fatalf("%s, %s: exited %v, want closed by the child's own exit 0", mode, how, ex)
			}
		}
	}
}

// A panic in Run reaches the parent: in Exited.Err with the stack, and as a log record.
// A panic in Init is the initialization's error.
func TestChildPanicReachesTheParent(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, _ := spawn(t, system, workerConfig("panic", slogWith(rec)), nil)
	ex := exited(probe)
	var ce *messages.ChildError
	if ex.Reason != messages.ReasonCrashed || ex.ExitCode != childproc.ExitPanic || !errors.As(ex.Err, &ce) ||
		!strings.HasPrefix(ce.Panic, "boom") || !strings.Contains(ce.Panic, "goroutine") {
		t.Fatalf("exited: %v (err %#v)", ex, ex.Err)
	}
	if attrs, ok := rec.find("procsup: panic in Run"); !ok || attrs["panic"].String() != "boom" {
		t.Fatalf("no panic record: %v", attrs)
	}
	probe, _ = spawn(t, system, workerConfig("initpanic", nil), nil)
	ex = exited(probe)
	if ex.Reason != messages.ReasonInitFailed || ex.Err == nil || ex.Err.Error() != "panic: init exploded" {
		t.Fatalf("init panic: exited %v", ex)
	}
}

// A panic in a request or message handler is answered and logged; the child carries on.
func TestHandlerPanicsAreSurvived(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, workerConfig("healthy", slogWith(rec)), nil)
	run := running(probe)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := actors.Ask(ctx, system, pid, "panic", nil)
	var remote *messages.RemoteError
	if !errors.As(err, &remote) || remote.Code != wire.CodePanic || remote.Message != "panic: request exploded" {
		t.Fatalf("ask that panics: %v", err)
	}
	system.Root.Send(pid, &messages.Send{Kind: "panic"})
	within(t, 10*time.Second, "the message handler's panic record", func() bool {
		return rec.count("procsup: panic in HandleMessage") == 1
	})
	if body, err := actors.Ask(ctx, system, pid, "echo", []byte("on")); err != nil || string(body) != "echo:on" {
		t.Fatalf("ask after: %q %v", body, err)
	}
	stillRunning(t, system, pid, run.OSPid)
}

// A message handler that blocks does not stop the child answering pings: two hundred
// messages wait for it while the pings go on, and all are handled once it is free.
func TestSlowMessageHandlerKeepsAnsweringPings(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.PingInterval, cfg.PingTimeout = 50*time.Millisecond, time.Second
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	system.Root.Send(pid, &messages.Send{Kind: "block"})
	for range 200 {
		system.Root.Send(pid, &messages.Send{Kind: "noop"})
	}
	// Three ping timeouts with the handler stuck: an unanswered ping would have killed it.
	probe.ExpectNoMessage(3*time.Second, func(m any) bool { _, ok := m.(*messages.Exited); return ok })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := actors.Ask(ctx, system, pid, "unblock", nil); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "every message handled", func() bool {
		body, err := actors.Ask(ctx, system, pid, "handled", nil)
		n, _ := strconv.Atoi(string(body))
		return err == nil && n == 201
	})
}

// A Kill during a Close is what ends the process, and says so.
func TestCloseThenKillReportsTheKill(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("ignoreshutdown", nil)
	cfg.CloseTimeout = time.Minute
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	system.Root.Send(pid, &messages.Close{})
	actortest.ExpectType(probe, 10*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Closing })
	system.Root.Send(pid, &messages.Kill{})
	if ex := exited(probe); ex.Reason != messages.ReasonKilled || !ex.Killed {
		t.Fatalf("exited: %v, want killed on request", ex)
	}
}

// Status after a restart still says how the last process ended, and its error.
func TestStatusKeepsTheLastEndAcrossRestarts(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.Restart = actors.Permanent
	probe, pid := spawn(t, system, cfg, actors.NewStrategy(actors.Backoff{Initial: time.Millisecond}))
	running(probe)
	system.Root.Send(pid, &messages.Send{Kind: "exit"}) // a crash on cue
	actortest.ExpectType(probe, 10*time.Second, func(e *messages.Exited) bool { return e.Reason == messages.ReasonCrashed })
	running(probe)
	st := status(t, system, pid)
	if st.State != messages.Running || st.Restarts != 1 || st.Reason != messages.ReasonCrashed ||
		!errors.Is(st.LastError, messages.ReasonCrashed) {
		t.Fatalf("status after a restart: %+v", st)
	}
}

// A Close sent to a tree closes every process below it (through a nested tree too); the
// tree stays. Its strategy's Restarting and RestartLimit reach the tree's parent.
func TestTreeTakesCommandsAndForwardsRestarts(t *testing.T) {
	system := newSystem(t)
	probe := actortest.NewProbe(t, system, nil)
	inner := actors.NewTree(nil, actors.Spec{Name: "w2", Props: mustProps(workerConfig("healthy", nil))})
	tree := probe.Spawn(actors.NewTree(nil, actors.Spec{Name: "w1", Props: mustProps(workerConfig("healthy", nil))},
		actors.Spec{Name: "inner", Props: inner}), "tree")
	stopAtEnd(t, system, tree)
	running(probe)
	running(probe)
	system.Root.Send(tree, &messages.Close{})
	for range 2 {
		if ex := exited(probe); ex.Reason != messages.ReasonClosed {
			t.Fatalf("exited %v", ex)
		}
	}
	if _, live := system.ProcessRegistry.Get(tree); !live {
		t.Fatal("the tree stopped on Close")
	}

	cfg := workerConfig("crash", nil)
	cfg.Restart = actors.Permanent
	crashing := probe.Spawn(actors.NewTree(actors.NewStrategy(actors.Backoff{Initial: time.Millisecond, MaxRestarts: 2, Window: time.Minute}),
		actors.Spec{Name: "c", Props: mustProps(cfg)}), "crashing")
	stopAtEnd(t, system, crashing)
	for attempt := 1; attempt <= 2; attempt++ {
		r := actortest.ExpectType[*messages.Restarting](probe, 15*time.Second)
		if r.Attempt != attempt || !errors.Is(r.Cause, messages.ReasonCrashed) {
			t.Fatalf("restarting %+v", r)
		}
	}
	if l := actortest.ExpectType[*messages.RestartLimit](probe, 15*time.Second); l.Failures != 3 {
		t.Fatalf("restart limit %+v", l)
	}
}

// With StderrTail, Exited carries the end of what a dying child wrote to its stderr.
func TestStderrTailInExited(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("stderr", nil)
	cfg.Launcher.(*launch.Command).Stderr = nil
	cfg.StderrTail = 64
	probe, _ := spawn(t, system, cfg, nil)
	ex := exited(probe)
	if ex.Reason != messages.ReasonCrashed || len(ex.Stderr) != 64 || !strings.HasSuffix(ex.Stderr, "fatal error: all goroutines are asleep\n") {
		t.Fatalf("exited %v, stderr %q", ex, ex.Stderr)
	}
}

// Stopping an actor ends its process by the same path as a Close: the actor goes through
// closing (and answers while it does), kills the child that ignores the request after
// CloseTimeout, reports Exited, and only then stops.
func TestStopEndsLikeAClose(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("ignoreshutdown", nil)
	cfg.CloseTimeout = 2 * time.Second
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	stopped := stopInBackground(system, pid)
	actortest.ExpectType(probe, 10*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Closing })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := actors.Status(ctx, system, pid)
	if err != nil || st.State != messages.Closing {
		t.Fatalf("status while stopping: %+v, %v", st, err)
	}
	if ex := exited(probe); ex.Reason != messages.ReasonClosed || !ex.Killed {
		t.Fatalf("exited %v, want closed by a kill after the close timeout", ex)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	terminated(probe, pid)
}
