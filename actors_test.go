package procsup_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

func TestHealthyLifecycle(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("healthy", nil), nil)
	run := running(probe)
	if run.OSPid == 0 || !actortest.Alive(run.OSPid) {
		t.Fatalf("running event without a live pid: %+v", run)
	}
	st := status(t, system, pid)
	if st.State != messages.Running || st.OSPid != run.OSPid || st.StartedAt.IsZero() || st.Uptime <= 0 {
		t.Fatalf("status %+v", st)
	}
	if r := ask(t, system, pid, "echo", "hi"); r.Err != nil || string(r.Body) != "echo:hi" {
		t.Fatalf("ask: %+v", r)
	}
	var remote *messages.RemoteError
	if r := ask(t, system, pid, "fail", ""); !errors.As(r.Err, &remote) || remote.Message != "refused" {
		t.Fatalf("ask fail: %+v", r)
	}
	// An Ask through ReenterAfter, from inside an actor, as users would.
	got := make(chan *messages.Response, 1)
	system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); ok {
			f := c.RequestFuture(pid, &messages.Ask{Kind: "echo", Body: []byte("re")}, 5*time.Second)
			c.ReenterAfter(f, func(res any, err error) {
				got <- res.(*messages.Response)
				c.Stop(c.Self())
			})
		}
	}))
	if r := <-got; string(r.Body) != "echo:re" {
		t.Fatalf("reenter: %+v", r)
	}
	system.Root.Send(pid, &messages.Close{Reason: "test done"})
	actortest.ExpectType(probe, 5*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Closing })
	ex := exited(probe)
	if ex.Reason != messages.ReasonClosed || ex.ExitCode != 0 || ex.Killed || ex.OSPid != run.OSPid {
		t.Fatalf("exited: %v", ex)
	}
	terminated(probe, pid)
	if actortest.Alive(run.OSPid) {
		t.Fatal("process alive after the actor stopped")
	}
}

func TestInitializationError(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("initfail", nil), nil)
	ex := exited(probe)
	if ex.Reason != messages.ReasonInitFailed || ex.Err == nil || ex.Err.Error() != "model file missing" {
		t.Fatalf("exited: %v", ex)
	}
	terminated(probe, pid) // temporary: not restarted
}

func TestInitializationTimeout(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("initslow", nil)
	cfg.InitializeTimeout = 300 * time.Millisecond
	probe, _ := spawn(t, system, cfg, nil)
	ex := exited(probe)
	if ex.Reason != messages.ReasonInitTimeout || !ex.Killed || ex.Signal != syscall.SIGKILL {
		t.Fatalf("exited: %v", ex)
	}
}

func TestCloseTimeoutKills(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("ignoreshutdown", nil)
	cfg.CloseTimeout = 300 * time.Millisecond
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	system.Root.Send(pid, &messages.Close{})
	ex := exited(probe)
	if ex.Reason != messages.ReasonClosed || !ex.Killed {
		t.Fatalf("exited: %v", ex)
	}
	terminated(probe, pid)
}

func TestKill(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("healthy", nil), nil)
	running(probe)
	system.Root.Send(pid, &messages.Kill{})
	ex := exited(probe)
	if ex.Reason != messages.ReasonKilled || !ex.Killed || ex.Signal != syscall.SIGKILL {
		t.Fatalf("exited: %v", ex)
	}
	terminated(probe, pid)
}

func TestCrashRestartsWithNewPid(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("crash", nil)
	cfg.Restart = actors.Permanent
	strategy := actors.NewStrategy(actors.Backoff{Initial: 10 * time.Millisecond, MaxRestarts: 100, Window: time.Minute})
	probe, pid := spawn(t, system, cfg, strategy)
	first := running(probe)
	ex := exited(probe)
	if ex.Reason != messages.ReasonCrashed || ex.ExitCode != 3 || ex.Killed || ex.OSPid != first.OSPid {
		t.Fatalf("exited: %v", ex)
	}
	second := running(probe)
	if second.OSPid == first.OSPid || !second.PID.Equal(pid) {
		t.Fatalf("restart: first %+v, second %+v", first, second)
	}
	if st := status(t, system, pid); st.Restarts < 1 {
		t.Fatalf("status after a restart: %+v", st)
	}
}

func TestCrashLoopBacksOffThenStops(t *testing.T) {
	system := newSystem(t)
	events := make(chan any, 100)
	sub := system.EventStream.Subscribe(func(ev any) {
		switch ev.(type) {
		case *messages.Restarting, *messages.RestartLimit:
			events <- ev
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	cfg := workerConfig("initcrash", nil)
	cfg.Restart = actors.Permanent
	strategy := actors.NewStrategy(actors.Backoff{Initial: 20 * time.Millisecond, Multiplier: 2, Max: time.Second,
		MaxRestarts: 4, Window: time.Minute})
	probe, pid := spawn(t, system, cfg, strategy)
	var delays []time.Duration
	for {
		select {
		case ev := <-events:
			switch ev := ev.(type) {
			case *messages.Restarting:
				if !errors.Is(ev.Cause, messages.ReasonInitFailed) {
					t.Fatalf("cause %v, want a failed initialization (it exits before its InitializeResponse)", ev.Cause)
				}
				delays = append(delays, ev.Delay)
				continue
			case *messages.RestartLimit:
				if ev.Failures != 5 {
					t.Fatalf("limit after %d failures, want 5", ev.Failures)
				}
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no restart limit; delays so far %v", delays)
		}
		break
	}
	want := []time.Duration{20, 40, 80, 160}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(delays, want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	terminated(probe, pid)
}

func TestHangKilledAsUnresponsive(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.PingInterval, cfg.PingTimeout = 100*time.Millisecond, 500*time.Millisecond
	probe, _ := spawn(t, system, cfg, nil)
	run := running(probe)
	signal(t, run.OSPid, syscall.SIGSTOP)
	ex := exited(probe)
	if ex.Reason != messages.ReasonUnresponsive || !ex.Killed || ex.Err == nil || !strings.HasPrefix(ex.Err.Error(), "no pong for ") {
		t.Fatalf("exited: %v", ex)
	}
	// The verdict came after the whole ping timeout of silence, never before it.
	if silence, err := time.ParseDuration(strings.TrimPrefix(ex.Err.Error(), "no pong for ")); err != nil || silence < cfg.PingTimeout {
		t.Fatalf("killed after %v of silence (%v), want at least the ping timeout", silence, err)
	}
}

func TestSlowPongsRaiseHighPing(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.PingInterval, cfg.HighPingThreshold = 50*time.Millisecond, 100*time.Millisecond
	probe, _ := spawn(t, system, cfg, nil)
	run := running(probe)
	signal(t, run.OSPid, syscall.SIGSTOP)
	time.Sleep(300 * time.Millisecond) // the stimulus: a child that does not answer for 300 ms
	signal(t, run.OSPid, syscall.SIGCONT)
	hp := actortest.ExpectType[*messages.HighPing](probe, 5*time.Second)
	if hp.RTT < 100*time.Millisecond || hp.OSPid != run.OSPid {
		t.Fatalf("high ping %+v", hp)
	}
}

func TestMemoryWarningThenLimit(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("memhog", nil)
	cfg.MemoryWarnMB, cfg.MemoryLimitMB = 60, 200
	cfg.MemorySampleInterval = 20 * time.Millisecond
	cfg.MemoryWarnCooldown, cfg.MemoryRepeatGrowthMB = time.Hour, 10000 // one warning per cooldown
	probe, _ := spawn(t, system, cfg, nil)
	warn := actortest.ExpectType[*messages.MemoryWarning](probe, 10*time.Second)
	if warn.Bytes <= 60<<20 || (warn.Figure != "pss" && warn.Figure != "rss") {
		t.Fatalf("warning %+v", warn)
	}
	limit := actortest.ExpectType[*messages.MemoryLimitExceeded](probe, 10*time.Second)
	if limit.Bytes <= 200<<20 {
		t.Fatalf("limit %+v", limit)
	}
	ex := exited(probe)
	if ex.Reason != messages.ReasonMemoryLimit || !ex.Killed {
		t.Fatalf("exited: %v", ex)
	}
	warnings := 1
	for _, m := range probe.Drain() {
		if _, ok := m.(*messages.MemoryWarning); ok {
			warnings++
		}
	}
	if warnings != 1 {
		t.Fatalf("%d warnings within one cooldown, want 1:\n%s", warnings, probe.History())
	}
}

func TestGarbageOnControlSocket(t *testing.T) {
	system := newSystem(t)
	healthyProbe, healthy := spawn(t, system, workerConfig("healthy", nil), nil)
	running(healthyProbe)
	probe, _ := spawn(t, system, rawConfig("garbage"), nil)
	ex := exited(probe)
	// Text read as a length prefix is a frame far over the cap.
	if ex.Reason != messages.ReasonProtocolError || !ex.Killed || !errors.Is(ex.Err, wire.ErrFrameTooLarge) {
		t.Fatalf("exited: %v", ex)
	}
	// The parent is unharmed: its other child still answers.
	if r := ask(t, system, healthy, "echo", "ok"); r.Err != nil {
		t.Fatalf("healthy child after a garbage one: %+v", r)
	}
}

func TestWrongFirstMessage(t *testing.T) {
	system := newSystem(t)
	probe, _ := spawn(t, system, rawConfig("wrongfirst"), nil)
	if ex := exited(probe); ex.Reason != messages.ReasonProtocolError || !ex.Killed {
		t.Fatalf("exited: %v", ex)
	}
}

func TestClosedControlSocketIsAFailure(t *testing.T) {
	system := newSystem(t)
	probe, _ := spawn(t, system, rawConfig("closesocket"), nil)
	ex := exited(probe)
	if ex.Reason != messages.ReasonProtocolError || !ex.Killed {
		t.Fatalf("exited: %v", ex)
	}
}

func TestCloseLeavesNoGrandchild(t *testing.T) {
	system := newSystem(t)
	probe, pid := spawn(t, system, workerConfig("grandchild", nil), nil)
	run := running(probe)
	msg := actortest.ExpectType(probe, 5*time.Second, func(m *messages.ChildMessage) bool { return m.Kind == "grandchild" })
	grandchild, _ := strconv.Atoi(string(msg.Body))
	if !actortest.Alive(grandchild) || len(actortest.GroupPIDs(run.OSPid)) < 2 {
		t.Fatalf("grandchild %d not running in group %d", grandchild, run.OSPid)
	}
	system.Root.Send(pid, &messages.Close{})
	terminated(probe, pid)
	if left := actortest.GroupPIDs(run.OSPid); len(left) > 0 || actortest.Alive(grandchild) {
		t.Fatalf("after close, group %d still has %v", run.OSPid, left)
	}
}

func TestChildLogsReachParentLogger(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, workerConfig("healthy", slogWith(rec)), nil)
	run := running(probe)
	system.Root.Send(pid, &messages.Send{Kind: "log"})
	var attrs map[string]any
	within(t, 5*time.Second, "the child's record in the parent's log", func() bool {
		a, ok := rec.find("child says hello")
		if ok {
			attrs = map[string]any{"pid": a["pid"].Int64(), "n": a["n"].Int64(), "actor": a["actor"].String()}
		}
		return ok
	})
	if attrs["pid"] != int64(run.OSPid) || attrs["n"] != int64(42) || attrs["actor"] != pid.Id {
		t.Fatalf("record attrs %v", attrs)
	}
	if a, ok := rec.find("process initialized"); !ok || a["elapsed"].Duration() <= 0 {
		t.Fatal("no 'process initialized' record with the elapsed time")
	}
}

func TestTreeShutdownLeavesNoProcess(t *testing.T) {
	system := newSystem(t)
	var specs []actors.Spec
	for i, mode := range []string{"healthy", "healthy", "grandchild", "ignoreshutdown"} {
		cfg := workerConfig(mode, nil)
		cfg.CloseTimeout = time.Second
		specs = append(specs, actors.Spec{Name: "w" + strconv.Itoa(i), Props: mustProps(cfg)})
	}
	pids := make(chan int, 10)
	sub := system.EventStream.Subscribe(func(ev any) {
		if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
			pids <- sc.OSPid
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	tree := system.Root.Spawn(actors.NewTree(nil, specs...))
	var groups []int
	for range specs {
		select {
		case pid := <-pids:
			groups = append(groups, pid)
		case <-time.After(10 * time.Second):
			t.Fatal("not every worker ran")
		}
	}
	within(t, 5*time.Second, "the grandchild started", func() bool {
		for _, g := range groups {
			if len(actortest.GroupPIDs(g)) > 1 {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := actors.StopAndWait(ctx, system, tree); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if left := actortest.GroupPIDs(g); len(left) > 0 {
			t.Errorf("group %d left %v after the tree stopped", g, left)
		}
	}
}

// The parent program, supervising 50 children, is SIGKILLed: none of them survives it
// by a second.
func TestParentKilledChildrenDie(t *testing.T) {
	actortest.CheckLeaks(t)
	const n = 50
	kids := killSupervisor(t, n, childproc.EnvEntry+"=supervisor", "SUPERVISOR_N="+strconv.Itoa(n))
	died := time.Now()
	// Gone at once (the parent-death signal); the deadline is generous for a busy machine.
	within(t, 10*time.Second, "every worker gone after its parent's death", func() bool {
		return !slices.ContainsFunc(kids, actortest.Alive)
	})
	t.Logf("%d workers gone %v after their parent's death", n, time.Since(died).Round(time.Millisecond))
}

// killSupervisor starts this test binary as a supervising program with env, reads the n
// pids it prints (any number a line), checks they run, and SIGKILLs it; it returns the
// pids.
func killSupervisor(t *testing.T, n int, env ...string) []int {
	t.Helper()
	cmd, _ := launch.SelfCommand("worker")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	sup, err := launch.Start(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	sc := bufio.NewScanner(pr)
	var pids []int
	for len(pids) < n && sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
	}
	go io.Copy(io.Discard, pr)
	if len(pids) != n || slices.ContainsFunc(pids, func(pid int) bool { return !actortest.Alive(pid) }) {
		t.Fatalf("pids %v: not all %d running", pids, n)
	}
	sup.Signal(syscall.SIGKILL)
	sup.Wait(context.Background())
	pw.Close()
	return pids
}

func TestBadConfig(t *testing.T) {
	cases := map[string]func(*actors.Config){
		"no launcher":      func(c *actors.Config) { c.Launcher = nil },
		"empty path":       func(c *actors.Config) { c.Launcher = &launch.Command{} },
		"negative timeout": func(c *actors.Config) { c.CloseTimeout = -time.Second },
		"negative memory":  func(c *actors.Config) { c.MemoryLimitMB = -1 },
		"timeout < ping":   func(c *actors.Config) { c.PingTimeout = time.Millisecond },
		"bad policy":       func(c *actors.Config) { c.Restart = 9 },
	}
	for name, mutate := range cases {
		cfg := workerConfig("healthy", nil)
		mutate(&cfg)
		if _, err := actors.NewProcess(cfg); !errors.Is(err, actors.ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
}

func TestMissingBinaryIsAFailure(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.Launcher = &launch.Command{Path: "/nonexistent/procsup-worker"}
	probe, pid := spawn(t, system, cfg, nil)
	ex := exited(probe)
	if ex.Reason != messages.ReasonStartFailed || ex.Err == nil {
		t.Fatalf("exited: %v", ex)
	}
	terminated(probe, pid)
}

func TestRestartPolicies(t *testing.T) {
	system := newSystem(t)
	strategy := actors.NewStrategy(actors.Backoff{MaxRestarts: 100, Window: time.Minute})

	cfg := workerConfig("exit0", nil)
	cfg.Restart = actors.Transient
	probe, pid := spawn(t, system, cfg, strategy)
	if ex := exited(probe); ex.Reason != messages.ReasonExited || ex.ExitCode != 0 {
		t.Fatalf("transient exited: %v", ex)
	}
	terminated(probe, pid) // a clean exit is no failure for a transient process

	cfg.Restart = actors.Permanent
	probe, _ = spawn(t, system, cfg, strategy)
	first := running(probe)
	exited(probe)
	if again := running(probe); again.OSPid == first.OSPid {
		t.Fatal("a permanent process was not restarted after a clean exit")
	}
}

func TestStackDumpOnKill(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	stderr := &lockedWriter{}
	cfg.Launcher.(*launch.Command).Stderr = stderr
	cfg.StackDumpGrace = 2 * time.Second
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	system.Root.Send(pid, &messages.Kill{})
	ex := exited(probe)
	if ex.Reason != messages.ReasonKilled || !ex.Killed {
		t.Fatalf("exited: %v", ex)
	}
	terminated(probe, pid)
	within(t, 5*time.Second, "the child's goroutine dump on its stderr", func() bool {
		return strings.Contains(stderr.String(), "goroutine ")
	})
}

func TestAllForOneRestartsSiblings(t *testing.T) {
	system := newSystem(t)
	probe := actortest.NewProbe(t, system, nil)
	cfg := workerConfig("healthy", nil)
	cfg.Restart = actors.Permanent
	strategy := actors.NewStrategy(actors.Backoff{Initial: 50 * time.Millisecond, MaxRestarts: 1, Window: time.Minute, AllForOne: true})
	tree := probe.Spawn(actors.NewTree(strategy,
		actors.Spec{Name: "crash", Props: mustProps(cfg)},
		actors.Spec{Name: "healthy", Props: mustProps(cfg)}), "tree")
	stopAtEnd(t, system, tree)
	crashPID, healthyPID := actors.ChildPID(tree, "crash"), actors.ChildPID(tree, "healthy")
	both := func() (first map[string]int) {
		first = map[string]int{}
		for len(first) < 2 {
			e := running(probe)
			first[e.PID.Id] = e.OSPid
		}
		return first
	}
	before := both()
	// A crash of one (on cue, once both run) takes its healthy sibling down with it,
	// gracefully, and both restart.
	system.Root.Send(crashPID, &messages.Send{Kind: "exit"})
	actortest.ExpectType(probe, 10*time.Second, func(e *messages.Exited) bool {
		return e.PID.Equal(crashPID) && e.Reason == messages.ReasonCrashed && e.ExitCode == 3
	})
	actortest.ExpectType(probe, 10*time.Second, func(e *messages.Exited) bool {
		return e.PID.Equal(healthyPID) && e.Reason == messages.ReasonClosed && !e.Killed
	})
	after := both()
	for id, pid := range after {
		if pid == before[id] {
			t.Fatalf("%s was not restarted with a fresh process", id)
		}
	}
}

func TestNestedTreeForwardsEvents(t *testing.T) {
	system := newSystem(t)
	probe := actortest.NewProbe(t, system, nil)
	inner := actors.NewTree(nil, actors.Spec{Name: "w", Props: mustProps(workerConfig("healthy", nil))})
	outer := probe.Spawn(actors.NewTree(nil, actors.Spec{Name: "inner", Props: inner}), "outer")
	stopAtEnd(t, system, outer)
	ev := running(probe)
	if want := actors.ChildPID(actors.ChildPID(outer, "inner"), "w"); !ev.PID.Equal(want) {
		t.Fatalf("running event from %s, want %s", ev.PID.Id, want.Id)
	}
}

// lockedWriter is a strings.Builder safe for the goroutine that copies a child's
// output and the test that reads it.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An actor stopped while its child initializes stops, though the child's
// InitializeResponse arrives while it is stopping (it used to start its checks then, and
// never finish stopping).
func TestStopDuringInitialization(t *testing.T) {
	system := newSystem(t)
	for range 5 {
		probe := actortest.NewProbe(t, system, nil)
		pid := probe.Spawn(mustProps(workerConfig("init100ms", nil)), "proc")
		actortest.ExpectType(probe, 10*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Initializing })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := actors.StopAndWait(ctx, system, pid)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}
