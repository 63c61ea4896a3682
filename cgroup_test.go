package procsup_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

// escapeesOf waits for the worker's report of its descendants out of its process group:
// a grandchild in a session of its own and a double-forked daemon.
func escapeesOf(t *testing.T, probe *actortest.Probe) []int {
	t.Helper()
	m := actortest.ExpectType(probe, 15*time.Second, func(m *messages.ChildMessage) bool { return m.Kind == "escapee" })
	var pids []int
	for _, f := range strings.Fields(string(m.Body)) {
		pid, _ := strconv.Atoi(f)
		if !actortest.Alive(pid) {
			t.Fatalf("escapee %d not running", pid)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("escapees %q, want two", m.Body)
	}
	return pids
}

// With Cgroups, no ending leaves the worker's descendants that left its process group (a
// grandchild in its own session, a double-forked daemon), and the worker's cgroup is
// gone by the time Exited is published.
func TestCgroupEveryEndingLeavesNothing(t *testing.T) {
	endings := map[string]func(system *actor.ActorSystem, pid *actor.PID){
		"close": func(s *actor.ActorSystem, pid *actor.PID) { s.Root.Send(pid, &messages.Close{}) },
		"kill":  func(s *actor.ActorSystem, pid *actor.PID) { s.Root.Send(pid, &messages.Kill{}) },
		"crash": func(s *actor.ActorSystem, pid *actor.PID) {
			s.Root.Send(pid, &messages.Send{Kind: "exit", Body: []byte("3")})
		},
		"stop": func(s *actor.ActorSystem, pid *actor.PID) { s.Root.Stop(pid) },
	}
	for name, end := range endings {
		t.Run(name, func(t *testing.T) {
			system := newSystem(t)
			cg := childproctest.Cgroups(t)
			cfg := workerConfig("escapee", nil)
			cfg.Cgroups = cg
			probe, pid := spawn(t, system, cfg, nil)
			escapees := escapeesOf(t, probe)
			st := status(t, system, pid)
			if st.Cgroup == "" || !strings.HasPrefix(st.Cgroup, cg.Session()) {
				t.Fatalf("status cgroup %q, want one in %s", st.Cgroup, cg.Session())
			}
			end(system, pid)
			ex := exited(probe)
			if i := slices.IndexFunc(escapees, actortest.Alive); i >= 0 {
				t.Fatalf("the escapee %d outlived its worker's end (%v)", escapees[i], ex)
			}
			if _, err := os.Stat(st.Cgroup); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the worker's cgroup is still there when Exited came: %v", err)
			}
			if name == "crash" && (ex.Reason != messages.ReasonCrashed || ex.ExitCode != 3) {
				t.Fatalf("exited %v, want crashed with code 3", ex)
			}
		})
	}
}

// The supervising program is SIGKILLed: its guardian kills every worker's cgroup, and
// the descendants that left their process groups (setsid, a double-forked daemon) die
// with them.
func TestCgroupParentKilledNothingSurvives(t *testing.T) {
	actortest.CheckLeaks(t)
	cg := childproctest.Cgroups(t) // its directory: the supervisor makes its own session there
	const n = 5
	escapees := killSupervisor(t, 2*n, childproc.EnvEntry+"=cgroupsupervisor", "SUPERVISOR_N="+strconv.Itoa(n), "CGROUP_DIR="+cg.Dir())
	within(t, time.Minute, "every escapee gone after the supervisor's death", func() bool {
		return !slices.ContainsFunc(escapees, actortest.Alive)
	})
	within(t, time.Minute, "the supervisor's session removed by its guardian", func() bool {
		ents, _ := os.ReadDir(cg.Dir())
		return !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.IsDir() })
	})
}

// cgroupSupervisorProgram supervises SUPERVISOR_N escapee workers in cgroups of
// CGROUP_DIR and prints their escapees' pids.
func cgroupSupervisorProgram() {
	system := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	cg, err := launch.OpenCgroups(os.Getenv("CGROUP_DIR"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	n, _ := strconv.Atoi(os.Getenv("SUPERVISOR_N"))
	var specs []actors.Spec
	for i := range n {
		cfg := workerConfig("escapee", nil)
		cfg.Cgroups = cg
		specs = append(specs, actors.Spec{Name: fmt.Sprint("w", i), Props: mustProps(cfg)})
	}
	pids := make(chan string, n)
	system.EventStream.Subscribe(func(ev any) {
		if m, ok := ev.(*messages.ChildMessage); ok && m.Kind == "escapee" {
			pids <- string(m.Body)
		}
	})
	system.Root.Spawn(actors.NewTree(nil, specs...))
	for range n {
		fmt.Println(<-pids)
	}
	select {}
}

// The cgroup's CPU time is in Status and Exited, and a busy worker raises CPUWarning,
// with a cgroup and without.
func TestCPUWarningAndFigures(t *testing.T) {
	for _, withCgroup := range []bool{true, false} {
		t.Run(fmt.Sprint("cgroup=", withCgroup), func(t *testing.T) {
			system := newSystem(t)
			cfg := workerConfig("spin", nil)
			if withCgroup {
				cfg.Cgroups = childproctest.Cgroups(t)
			}
			cfg.CPUWarnPercent = 20
			cfg.CPUWarnPeriod = 200 * time.Millisecond
			cfg.MemorySampleInterval = 100 * time.Millisecond
			probe, pid := spawn(t, system, cfg, nil)
			w := actortest.ExpectType[*messages.CPUWarning](probe, time.Minute)
			if w.Percent <= 20 || w.Above < 200*time.Millisecond || w.Warn != 20 || w.CPU <= 0 {
				t.Fatalf("warning %v (%+v)", w, *w)
			}
			st := status(t, system, pid)
			if st.CPU <= 0 || st.CPUPercent <= 0 || (withCgroup && st.Cgroup == "") {
				t.Fatalf("status %+v", st)
			}
			system.Root.Send(pid, &messages.Kill{})
			if ex := exited(probe); ex.CPU < st.CPU {
				t.Fatalf("exited with CPU %v, below the %v of the status before", ex.CPU, st.CPU)
			}
		})
	}
}

// A fork bomb stays under pids.max, and ends with its worker: only where the kernel
// hands the pids controller down.
func TestCgroupForkBombBoundedByPidsMax(t *testing.T) {
	system := newSystem(t)
	cg := childproctest.Cgroups(t)
	if !cg.Available("pids") {
		t.Skipf("the kernel does not offer the pids controller in %s: no fork bomb without it", cg.Dir())
	}
	cfg := workerConfig("healthy", nil)
	cfg.Cgroups, cfg.CgroupLimits = cg, launch.CgroupLimits{PidsMax: 64}
	cfg.Launcher = &launch.Command{Path: "/bin/sh", Args: []string{"-c", "b() { b | b & }; b"}}
	cfg.InitializeTimeout = 2 * time.Second
	probe, _ := spawn(t, system, cfg, nil)
	ex := exited(probe)
	if !cg.Enabled("pids") {
		t.Fatalf("pids is offered but was not handed down")
	}
	if ex.Reason != messages.ReasonInitTimeout && ex.Reason != messages.ReasonInitFailed {
		t.Fatalf("exited %v", ex)
	}
	if left := childproctest.CgroupDirs(cg); len(left) > 0 {
		t.Fatalf("the bomb's cgroup is left: %v", left)
	}
}

// Bad cgroup settings are refused by NewProcess.
func TestCgroupBadConfig(t *testing.T) {
	cfg := workerConfig("healthy", nil)
	cfg.CgroupLimits = launch.CgroupLimits{PidsMax: 10}
	if _, err := actors.NewProcess(cfg); !errors.Is(err, actors.ErrBadConfig) {
		t.Errorf("limits without Cgroups: %v", err)
	}
	cfg.Cgroups = childproctest.Cgroups(t)
	cfg.CgroupLimits = launch.CgroupLimits{MemoryMax: -1}
	if _, err := actors.NewProcess(cfg); !errors.Is(err, actors.ErrBadConfig) || !errors.Is(err, launch.ErrBadCgroup) {
		t.Errorf("a negative limit: %v", err)
	}
}

// Limits whose controller the kernel does not hand down are left out, said once in the
// log, and the processes run all the same.
func TestCgroupMissingControllerSaidOnce(t *testing.T) {
	system := newSystem(t)
	base := childproctest.Cgroups(t)
	if base.Available("memory") {
		t.Skipf("the memory controller is offered in %s: nothing is missing", base.Dir())
	}
	rec := newRecorder()
	cg, err := launch.OpenCgroups(base.Dir(), slogWith(rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cg.Close() })
	cfg := workerConfig("healthy", nil)
	cfg.Cgroups, cfg.CgroupLimits = cg, launch.CgroupLimits{MemoryMax: 256 << 20, MemoryHigh: 200 << 20}
	for range 2 {
		probe, pid := spawn(t, system, cfg, nil)
		actortest.ExpectType(probe, 15*time.Second, func(s *messages.StateChanged) bool { return s.To == messages.Running })
		system.Root.Send(pid, &messages.Close{})
		exited(probe)
	}
	const said = "procsup: a cgroup controller is not available: its limits are left out"
	if n := rec.count(said); n != 1 {
		t.Fatalf("the missing memory controller was said %d times, want once", n)
	}
	if cg.Enabled("memory") {
		t.Fatal("memory reported enabled")
	}
}
