package procsup_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/childproc/python"
	"github.com/procsup/procsup/messages"
)

// startForkserver starts a fork server that preloads the test module preloaded, or
// skips the test where no python3 with msgpack is found. It is closed at the test's end.
func startForkserver(tb testing.TB) *python.Forkserver {
	tb.Helper()
	py, err := python.Interpreter()
	if err != nil {
		tb.Skip(err)
	}
	dir, _ := filepath.Abs("childproc/python")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs, err := python.StartForkserver(ctx, python.ForkserverOptions{
		Interpreter: py,
		Path:        []string{dir, filepath.Join(dir, "tests")},
		Preload:     []string{"preloaded"},
		Env:         []string{"PATH=/usr/bin:/bin"},
		Stderr:      os.Stderr,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fs.Close() })
	return fs
}

// forkedConfig is a process actor for the Python test worker in mode, forked by fs.
func forkedConfig(fs *python.Forkserver, mode string, logger *slog.Logger) actors.Config {
	cfg := workerConfig("healthy", logger)
	s := fs.Script("childproc/python/tests/testworker.py")
	s.Env = []string{"WORKER_MODE=" + mode, "PATH=/usr/bin:/bin"}
	cfg.Launcher = s
	cfg.PingInterval, cfg.PingTimeout = 100*time.Millisecond, 2*time.Second
	return cfg
}

// procStat returns the parent and process group of pid, from /proc.
func procStat(t *testing.T, pid int) (ppid, pgid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ppid, _ = strconv.Atoi(f[1])
	pgid, _ = strconv.Atoi(f[2])
	return ppid, pgid
}

// A worker forked by the fork server, under a process actor: it is this program's
// child in a process group of its own, it starts with the preloaded module imported by
// the fork server, and it serves, logs and closes as an interpreter of its own does.
func TestForkedPythonWorkerServes(t *testing.T) {
	system := newSystem(t)
	fs := startForkserver(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, forkedConfig(fs, "", slogWith(rec)), nil)
	ospid := running(probe).OSPid
	if ppid, pgid := procStat(t, ospid); ppid != os.Getpid() || pgid != ospid {
		t.Fatalf("the forked worker's parent %d and group %d, want %d and %d", ppid, pgid, os.Getpid(), ospid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 300 {
		body := []byte(strconv.Itoa(i))
		if got, err := actors.Ask(ctx, system, pid, "echo", body); err != nil || string(got) != string(body) {
			t.Fatalf("ask %d: %q, %v", i, got, err)
		}
	}
	if got, err := actors.Ask(ctx, system, pid, "preloaded", nil); err != nil || string(got) != strconv.Itoa(fs.Pid()) {
		t.Fatalf("the preloaded module was imported by %q (%v), want the fork server %d", got, err, fs.Pid())
	}
	var re *messages.RemoteError
	if _, err := actors.Ask(ctx, system, pid, "fail", nil); !errors.As(err, &re) || re.Code != "failed" {
		t.Fatalf("fail: %v, want a RemoteError with code failed", err)
	}
	if _, err := actors.Ask(ctx, system, pid, "log", nil); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the worker's log record", func() bool { return rec.count("with attributes") == 1 })
	if attrs, _ := rec.find("with attributes"); attrs["user"].String() != "ann" || !strings.Contains(attrs["child_source"].String(), "testworker.py:") {
		t.Fatalf("the record's attributes: %v", attrs)
	}
	system.Root.Send(pid, &messages.Close{})
	if ex := exited(probe); ex.Reason != messages.ReasonClosed || ex.ExitCode != 0 || ex.Killed {
		t.Fatalf("exited: %v", ex)
	}
}

// With Cgroups, a forked worker is in a cgroup of its own before it runs, as one
// started by exec is; the cgroup is gone when it has exited.
func TestForkedPythonWorkerInACgroup(t *testing.T) {
	system := newSystem(t)
	fs := startForkserver(t)
	cfg := forkedConfig(fs, "", nil)
	cg := childproctest.Cgroups(t)
	cfg.Cgroups = cg
	probe, pid := spawn(t, system, cfg, nil)
	ospid := running(probe).OSPid
	st := status(t, system, pid)
	if st.Cgroup == "" || !strings.HasPrefix(st.Cgroup, cg.Session()) {
		t.Fatalf("status cgroup %q, want one in %s", st.Cgroup, cg.Session())
	}
	b, err := os.ReadFile(filepath.Join(st.Cgroup, "cgroup.procs"))
	if err != nil || !slices.Contains(strings.Fields(string(b)), strconv.Itoa(ospid)) {
		t.Fatalf("the cgroup holds %q (%v), want the worker %d", b, err, ospid)
	}
	system.Root.Send(pid, &messages.Close{})
	if ex := exited(probe); ex.Reason != messages.ReasonClosed {
		t.Fatalf("exited: %v", ex)
	}
	if _, err := os.Stat(st.Cgroup); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the worker's cgroup is still there: %v", err)
	}
}

// The fork server is killed: the worker it forked goes on serving; a start after that
// fails, saying the fork server is gone, and so does one after Close.
func TestForkserverGoneWorkersGoOn(t *testing.T) {
	system := newSystem(t)
	fs := startForkserver(t)
	probe, pid := spawn(t, system, forkedConfig(fs, "", nil), nil)
	ospid := running(probe).OSPid
	signal(t, fs.Pid(), syscall.SIGKILL)
	<-fs.Done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got, err := actors.Ask(ctx, system, pid, "echo", []byte("still here")); err != nil || string(got) != "still here" {
		t.Fatalf("the worker after its fork server's death: %q, %v", got, err)
	}
	stillRunning(t, system, pid, ospid)
	later, _ := spawn(t, system, forkedConfig(fs, "", nil), nil)
	if ex := exited(later); ex.Reason != messages.ReasonStartFailed || !errors.Is(ex.Err, python.ErrForkserverGone) {
		t.Fatalf("a start after the fork server died: %v, want start failed with ErrForkserverGone", ex)
	}

	fs2 := startForkserver(t)
	fs2.Close()
	closed, _ := spawn(t, system, forkedConfig(fs2, "", nil), nil)
	if ex := exited(closed); ex.Reason != messages.ReasonStartFailed || !errors.Is(ex.Err, python.ErrForkserverGone) {
		t.Fatalf("a start after Close: %v, want start failed with ErrForkserverGone", ex)
	}
	system.Root.Send(pid, &messages.Close{})
	if ex := exited(probe); ex.Reason != messages.ReasonClosed {
		t.Fatalf("exited: %v", ex)
	}
}

// A script that is not there, an environment too large to send, a preloaded module that
// is not there, and one that starts a thread, are clear errors; nothing is left running.
func TestForkserverBadInput(t *testing.T) {
	actortest.CheckLeaks(t)
	system := newSystem(t)
	fs := startForkserver(t)
	cfg := forkedConfig(fs, "", nil)
	cfg.Launcher = fs.Script("childproc/python/tests/no-such-worker.py")
	probe, _ := spawn(t, system, cfg, nil)
	if ex := exited(probe); ex.Reason != messages.ReasonStartFailed || !errors.Is(ex.Err, os.ErrNotExist) {
		t.Fatalf("a missing script: %v, want start failed with ErrNotExist", ex)
	}
	huge := fs.Script("childproc/python/tests/testworker.py")
	huge.Env = []string{"HUGE=" + strings.Repeat("x", 2<<20)}
	cfg.Launcher = huge
	probe, _ = spawn(t, system, cfg, nil)
	if ex := exited(probe); ex.Reason != messages.ReasonStartFailed || !errors.Is(ex.Err, launch.ErrBadCommand) {
		t.Fatalf("an environment over the fork server's bound: %v, want start failed with ErrBadCommand", ex)
	}
	dir, _ := filepath.Abs("childproc/python")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := python.StartForkserver(ctx, python.ForkserverOptions{Path: []string{dir}, Preload: []string{"no_such_module_here"}})
	if !errors.Is(err, python.ErrForkserverStart) || !strings.Contains(err.Error(), "no_such_module_here") {
		t.Fatalf("a preload that is not there: %v, want ErrForkserverStart naming it", err)
	}
	if _, err := python.StartForkserver(ctx, python.ForkserverOptions{Path: []string{dir}, Preload: []string{"-c"}}); !errors.Is(err, python.ErrForkserverStart) {
		t.Fatalf("a preload that is an option: %v, want ErrForkserverStart", err)
	}
	_, err = python.StartForkserver(ctx, python.ForkserverOptions{Path: []string{dir, filepath.Join(dir, "tests")}, Preload: []string{"threaded"}})
	if !errors.Is(err, python.ErrForkserverStart) || !strings.Contains(err.Error(), "started 1 thread") {
		t.Fatalf("a preload that starts a thread: %v, want ErrForkserverStart saying so", err)
	}
}

// The supervising program is SIGKILLed: the fork server and every worker it forked die
// with it.
func TestForkedWorkersDieWithTheProgram(t *testing.T) {
	if _, err := python.Interpreter(); err != nil {
		t.Skip(err)
	}
	actortest.CheckLeaks(t)
	const n = 3
	pids := killSupervisor(t, n+1, childproc.EnvEntry+"=forksupervisor", "SUPERVISOR_N="+strconv.Itoa(n))
	within(t, 10*time.Second, "the fork server and its workers gone after their program's death", func() bool {
		return !slices.ContainsFunc(pids, actortest.Alive)
	})
}

// forkSupervisorProgram starts a fork server and supervises SUPERVISOR_N workers it
// forks; it prints the fork server's pid and the workers', and waits to be killed.
func forkSupervisorProgram() {
	system := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	dir, _ := filepath.Abs("childproc/python")
	fs, err := python.StartForkserver(context.Background(), python.ForkserverOptions{Path: []string{dir}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(fs.Pid())
	superviseAndWait(system, mustProps(forkedConfig(fs, "", nil)))
}
