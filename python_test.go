package procsup_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/childproc/python"
	"github.com/procsup/procsup/messages"
)

// pythonConfig is a process actor for the Python test worker
// (childproc/python/tests/testworker.py) in mode, or skips the test, saying why, where
// no python3 with msgpack is found.
func pythonConfig(t *testing.T, mode string, logger *slog.Logger) actors.Config {
	t.Helper()
	py, err := python.Interpreter()
	if err != nil {
		t.Skip(err)
	}
	cfg := workerConfig("healthy", logger)
	cfg.Launcher = &launch.Command{Path: py, Args: []string{"childproc/python/tests/testworker.py"},
		Env: []string{"WORKER_MODE=" + mode, "PATH=/usr/bin:/bin"}}
	cfg.PingInterval, cfg.PingTimeout = 100*time.Millisecond, 2*time.Second
	return cfg
}

// eachPythonWay runs test for each way a Python worker starts: as a python3 of its own
// ("exec") and forked by a fork server ("forked", one for the subtest, started at its
// first config). config makes the config of the test worker in a mode.
func eachPythonWay(t *testing.T, test func(t *testing.T, config func(mode string, logger *slog.Logger) actors.Config)) {
	t.Run("exec", func(t *testing.T) {
		test(t, func(mode string, logger *slog.Logger) actors.Config { return pythonConfig(t, mode, logger) })
	})
	t.Run("forked", func(t *testing.T) {
		var fs *python.Forkserver
		test(t, func(mode string, logger *slog.Logger) actors.Config {
			if fs == nil {
				fs = startForkserver(t)
			}
			return forkedConfig(fs, mode, logger)
		})
	})
}

// A Python worker under a process actor: the handshake, a thousand Asks, its error
// replies, a request of its own to the parent, messages both ways, and its log records
// with their attributes, exception and source.
func TestPythonWorkerServes(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := pythonConfig(t, "", slogWith(rec))
	cfg.OnRequest = func(kind string, body []byte) ([]byte, error) { return append([]byte("answer to "), body...), nil }
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 1000 {
		body := []byte(strconv.Itoa(i))
		if got, err := actors.Ask(ctx, system, pid, "echo", body); err != nil || string(got) != string(body) {
			t.Fatalf("ask %d: %q, %v", i, got, err)
		}
	}
	if got, err := actors.Ask(ctx, system, pid, "upper", []byte("shout")); err != nil || string(got) != "SHOUT" {
		t.Fatalf("upper: %q, %v", got, err)
	}
	var re *messages.RemoteError
	if _, err := actors.Ask(ctx, system, pid, "fail", nil); !errors.As(err, &re) || re.Code != "failed" {
		t.Fatalf("fail: %v, want a RemoteError with code failed", err)
	}
	if _, err := actors.Ask(ctx, system, pid, "oops", nil); !errors.As(err, &re) || !strings.Contains(re.Message, "a bug") {
		t.Fatalf("a handler's exception: %v, want an error reply", err)
	}
	if got, err := actors.Ask(ctx, system, pid, "ask-parent", []byte("2+2")); err != nil || string(got) != "answer to 2+2" {
		t.Fatalf("the worker's request to the parent: %q, %v", got, err)
	}
	big, err := actors.Ask(ctx, system, pid, "big", []byte(strconv.Itoa(3<<20))) // in fragments
	if err != nil || len(big) != 3<<20 {
		t.Fatalf("a 3 MiB reply: %d bytes, %v", len(big), err)
	}
	if got, err := actors.Ask(ctx, system, pid, "echo", make([]byte, 3<<20)); err != nil || len(got) != 3<<20 {
		t.Fatalf("a 3 MiB request: %d bytes back, %v", len(got), err)
	}
	if err := actors.Send(ctx, system, pid, "note", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	seen := actortest.ExpectType(probe, 10*time.Second, func(m *messages.ChildMessage) bool { return m.Kind == "seen" })
	if string(seen.Body) != "hi" {
		t.Fatalf("the worker's message: %+v", seen)
	}
	if _, err := actors.Ask(ctx, system, pid, "log", nil); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the worker's log record", func() bool { return rec.count("with attributes") == 1 })
	attrs, _ := rec.find("with attributes")
	if attrs["user"].String() != "ann" || attrs["n"].Int64() != 3 || attrs["logger"].String() != "testworker" ||
		!strings.Contains(attrs["exception"].String(), "ValueError: for the record") ||
		!strings.Contains(attrs["child_source"].String(), "testworker.py:") {
		t.Fatalf("the record's attributes: %v", attrs)
	}
	if _, ok := rec.find("worker ready"); !ok {
		t.Fatal("no 'worker ready' record from init")
	}
	system.Root.Send(pid, &messages.Close{})
	if ex := exited(probe); ex.Reason != messages.ReasonClosed || ex.ExitCode != 0 || ex.Killed || ex.LogsDropped != 0 {
		t.Fatalf("exited: %v", ex)
	}
}

// A handler that blocks the event loop for seconds: the runtime's own thread answers the
// pings all the while (no kill as unresponsive), and the watchdog names the handler.
func TestPythonPingsWhileTheLoopIsBlocked(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := pythonConfig(t, "", slogWith(rec))
	cfg.PingTimeout = time.Second // far less than the block
	probe, pid := spawn(t, system, cfg, nil)
	ospid := running(probe).OSPid
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got, err := actors.Ask(ctx, system, pid, "block", []byte("3")); err != nil || string(got) != "unblocked" {
		t.Fatalf("block: %q, %v", got, err)
	}
	stillRunning(t, system, pid, ospid)
	within(t, 10*time.Second, "the watchdog's warning", func() bool { return rec.count("the event loop is blocked") > 0 })
	w, _ := rec.find("the event loop is blocked")
	if !strings.Contains(w["in"].String(), "on_request") {
		t.Fatalf("the warning names %q, want the blocking handler", w["in"].String())
	}
}

// Each hook's failure ends as the Go runtime's does, for a worker started either way:
// init's exception is a failed initialization with its message; run's ends the child
// with exit code 70 and the traceback in Exited.Err; a shutdown during an init that
// blocks ends it at once.
func TestPythonWorkerFailures(t *testing.T) {
	eachPythonWay(t, func(t *testing.T, config func(string, *slog.Logger) actors.Config) {
		system := newSystem(t)
		probe, _ := spawn(t, system, config("initfail", nil), nil)
		if ex := exited(probe); ex.Reason != messages.ReasonInitFailed || !strings.Contains(ex.Err.Error(), "model file missing") {
			t.Fatalf("init's exception: %v", ex)
		}

		probe, _ = spawn(t, system, config("runraise", nil), nil)
		ex := exited(probe)
		var ce *messages.ChildError
		if ex.Reason != messages.ReasonCrashed || ex.ExitCode != 70 || !errors.As(ex.Err, &ce) || !strings.Contains(ce.Panic, "ValueError: run exploded") {
			t.Fatalf("run's exception: %v (%#v)", ex, ex.Err)
		}

		cfg := config("initslow", nil)
		cfg.InitializeTimeout, cfg.CloseTimeout = time.Minute, time.Minute
		probe, pid := spawn(t, system, cfg, nil)
		actortest.ExpectType(probe, 10*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Initializing })
		system.Root.Send(pid, &messages.Close{})
		if ex := exited(probe); ex.Reason != messages.ReasonClosed || ex.Killed || ex.ExitCode != 0 {
			t.Fatalf("a shutdown during a blocking init: %v", ex)
		}
	})
}

// Kill, and a restart under a strategy after a crash: a new OS process under the same
// actor (forked anew, for a forked worker), answering again.
func TestPythonWorkerKillAndRestart(t *testing.T) {
	eachPythonWay(t, func(t *testing.T, config func(string, *slog.Logger) actors.Config) {
		system := newSystem(t)
		cfg := config("", nil)
		cfg.Restart = actors.Permanent
		strategy := actors.NewStrategy(actors.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond})
		probe, pid := spawn(t, system, cfg, strategy)
		first := running(probe).OSPid
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := actors.Ask(ctx, system, pid, "crash", nil); !errors.Is(err, actors.ErrProcessEnded) || !errors.Is(err, messages.ReasonCrashed) {
			t.Fatalf("the crashing ask: %v", err)
		}
		second := running(probe).OSPid
		if second == first {
			t.Fatal("restarted with the same pid")
		}
		if got, err := actors.Ask(ctx, system, pid, "echo", []byte("again")); err != nil || string(got) != "again" {
			t.Fatalf("after the restart: %q, %v", got, err)
		}
		system.Root.Send(pid, &messages.Kill{})
		if ex := actortest.ExpectType(probe, 15*time.Second, func(e *messages.Exited) bool { return e.OSPid == second }); ex.Reason != messages.ReasonKilled || !ex.Killed {
			t.Fatalf("killed: %v", ex)
		}
	})
}

// A pool of Python workers, started either way: acquired, asked, released, by several
// callers at once.
func TestPythonWorkerPool(t *testing.T) {
	eachPythonWay(t, func(t *testing.T, config func(string, *slog.Logger) actors.Config) {
		system := newSystem(t)
		_, pool := newPool(t, system, actors.PoolConfig{Process: config("", nil), Target: 2, Reuse: true})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		for c := range 3 {
			wg.Go(func() {
				for i := range 20 {
					proc, err := actors.Acquire(ctx, system, pool)
					if err != nil {
						t.Errorf("acquire: %v", err)
						return
					}
					body := []byte(strconv.Itoa(c*100 + i))
					if got, err := actors.Ask(ctx, system, proc, "echo", body); err != nil || string(got) != string(body) {
						t.Errorf("ask: %q, %v", got, err)
					}
					actors.Release(system, pool, proc)
				}
			})
		}
		wg.Wait()
	})
}

// A burst of records into a slow handler: each is delivered or counted in LogsDropped.
func TestPythonLogBurstIsCounted(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := pythonConfig(t, "", slog.New(slowHandler{rec, 200 * time.Microsecond}))
	cfg.LogRate = 0
	// The watchdog off: with the burst's thread holding the interpreter it would warn,
	// and a record of its own would be among those dropped.
	cmd := cfg.Launcher.(*launch.Command)
	cmd.Env = append(cmd.Env, "WATCHDOG=0")
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	const n = 20000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := actors.Send(ctx, system, pid, "burst", []byte(strconv.Itoa(n))); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "the burst logged", func() bool { return rec.count("burst") > 0 })
	if _, err := actors.Ask(ctx, system, pid, "echo", nil); err != nil { // the burst's handler is done
		t.Fatal(err)
	}
	system.Root.Send(pid, &messages.Close{})
	ex := exited(probe)
	if got := uint64(rec.count("burst")); got+ex.LogsDropped != n {
		t.Fatalf("%d records delivered + %d counted as dropped, want %d (%v)", got, ex.LogsDropped, n, ex)
	}
}
