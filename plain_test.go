package procsup_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

// plainConfig supervises sh -c script as a plain program.
func plainConfig(script string, logger *slog.Logger) actors.Config {
	cfg := workerConfig("healthy", logger)
	cfg.Launcher = &launch.Command{Path: "/bin/sh", Args: []string{"-c", script}}
	cfg.Plain = &actors.PlainConfig{}
	cfg.CloseTimeout = 10 * time.Second
	return cfg
}

// recordOf waits until the recorder holds a record with message msg.
func recordOf(t *testing.T, rec *recordingHandler, msg string) map[string]slog.Value {
	t.Helper()
	var attrs map[string]slog.Value
	within(t, 15*time.Second, "the record "+msg, func() bool {
		var ok bool
		attrs, ok = rec.find(msg)
		return ok
	})
	return attrs
}

// A plain program runs, its output lines become records with the pid, Asks fail with
// ErrNoProtocol, and a Close stops it with its signal.
func TestPlainProgramRunsLogsAndStops(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := plainConfig(`trap 'echo stopping; exit 0' TERM; echo hello; echo oops >&2; while :; do sleep 0.05; done`, slogWith(rec))
	probe, pid := spawn(t, system, cfg, nil)
	run := running(probe)
	hello := recordOf(t, rec, "hello")
	if hello["stream"].String() != "stdout" || hello["pid"].Int64() != int64(run.OSPid) {
		t.Fatalf("the stdout line's attributes: %v", hello)
	}
	if oops := recordOf(t, rec, "oops"); oops["stream"].String() != "stderr" {
		t.Fatalf("the stderr line's attributes: %v", oops)
	}
	if r := ask(t, system, pid, "echo", "x"); !errors.Is(r.Err, actors.ErrNoProtocol) {
		t.Fatalf("ask: %v, want ErrNoProtocol", r.Err)
	}
	system.Root.Send(pid, &messages.Close{})
	ex := exited(probe)
	if ex.Reason != messages.ReasonClosed || ex.Killed || ex.ExitCode != 0 {
		t.Fatalf("exited %v, want closed by its signal, exit code 0", ex)
	}
	recordOf(t, rec, "stopping")
}

// A plain program that ignores its stop signal is killed after CloseTimeout.
func TestPlainProgramIgnoringItsSignalIsKilled(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := plainConfig(`trap '' INT; echo armed; while :; do :; done`, slogWith(rec))
	cfg.Plain.StopSignal = syscall.SIGINT
	cfg.CloseTimeout = 300 * time.Millisecond
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	recordOf(t, rec, "armed") // the signal is ignored from here on
	system.Root.Send(pid, &messages.Close{})
	ex := exited(probe)
	if ex.Reason != messages.ReasonClosed || !ex.Killed || ex.Signal != syscall.SIGKILL {
		t.Fatalf("exited %v, want closed and killed", ex)
	}
}

// A plain program that crashes is restarted by the strategy, with a new pid.
func TestPlainProgramRestarts(t *testing.T) {
	system := newSystem(t)
	cfg := plainConfig(`sleep 0.1; exit 3`, nil)
	cfg.Restart = actors.Permanent
	strategy := actors.NewStrategy(actors.Backoff{Initial: 10 * time.Millisecond, MaxRestarts: 100, Window: time.Minute})
	probe, _ := spawn(t, system, cfg, strategy)
	first := running(probe)
	if ex := exited(probe); ex.Reason != messages.ReasonCrashed || ex.ExitCode != 3 {
		t.Fatalf("exited %v", ex)
	}
	actortest.ExpectType[*messages.Restarting](probe, 15*time.Second)
	if second := running(probe); second.OSPid == first.OSPid {
		t.Fatalf("restarted with the same pid %d", first.OSPid)
	}
}

// Readiness: running only once the port accepts, or the command exits 0; never ready
// within InitializeTimeout is ReasonInitTimeout.
func TestPlainProgramReadiness(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		system := newSystem(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // the port, free for the program to take
		cmd, _ := launch.SelfCommand("worker")
		cmd.Env = append(cmd.Env, "PROCSUP_ENTRY=listen", "LISTEN_ADDR="+addr)
		cfg := plainConfig("", nil)
		cfg.Launcher = cmd
		cfg.Plain.ReadyTCP = addr
		probe, _ := spawn(t, system, cfg, nil)
		running(probe)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("running, but the port does not accept: %v", err)
		}
		c.Close()
	})
	t.Run("command", func(t *testing.T) {
		system := newSystem(t)
		flag := filepath.Join(t.TempDir(), "ready")
		cfg := plainConfig(fmt.Sprintf(`sleep 0.2; touch %s; while :; do sleep 0.05; done`, flag), nil)
		cfg.Plain.ReadyCommand = []string{"test", "-f", flag}
		probe, _ := spawn(t, system, cfg, nil)
		running(probe)
		if _, err := os.Stat(flag); err != nil {
			t.Fatalf("running before the readiness command passed: %v", err)
		}
	})
	t.Run("never", func(t *testing.T) {
		system := newSystem(t)
		cfg := plainConfig(`while :; do sleep 0.05; done`, nil)
		cfg.Plain.ReadyTCP = "127.0.0.1:1"
		cfg.InitializeTimeout = 300 * time.Millisecond
		probe, _ := spawn(t, system, cfg, nil)
		if ex := exited(probe); ex.Reason != messages.ReasonInitTimeout {
			t.Fatalf("exited %v, want init timeout", ex)
		}
	})
}

// A plain program in a cgroup: the daemon it forks is gone when it is closed.
func TestPlainProgramDaemonContained(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := plainConfig(`setsid sh -c 'sleep 300 & echo daemon $!'; while :; do sleep 0.05; done`, slogWith(rec))
	cfg.Cgroups = childproctest.Cgroups(t)
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	var daemon int
	within(t, 15*time.Second, "the daemon's pid logged", func() bool {
		rec.each(func(r slog.Record) { fmt.Sscanf(r.Message, "daemon %d", &daemon) })
		return daemon != 0
	})
	if !actortest.Alive(daemon) {
		t.Fatalf("daemon %d not running", daemon)
	}
	system.Root.Send(pid, &messages.Close{})
	exited(probe)
	if actortest.Alive(daemon) {
		t.Fatalf("daemon %d outlived its program", daemon)
	}
}

func TestPlainBadConfig(t *testing.T) {
	for name, pc := range map[string]actors.PlainConfig{
		"both checks":   {ReadyTCP: "127.0.0.1:80", ReadyCommand: []string{"true"}},
		"empty command": {ReadyCommand: []string{}},
		"bad address":   {ReadyTCP: "no-port"},
		"bad signal":    {StopSignal: 99},
	} {
		cfg := plainConfig("true", nil)
		cfg.Plain = &pc
		if _, err := actors.NewProcess(cfg); !errors.Is(err, actors.ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
}
