package procsup_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages"
)

// A fault the soak injects, and the end it must lead to.
type fault struct {
	name   string
	config func() actors.Config
	act    func(system *actor.ActorSystem, pid *actor.PID, ospid int) // once running; nil: nothing
	reason messages.Reason
	killed bool
	tree   bool // run under a restarting strategy: expect a restart, then close
}

func chaosFaults() []fault {
	// Pings are frequent, but every limit a healthy child must stay within is generous:
	// a loaded machine may delay a pong or an exit by a second or more, and that must not
	// change how a lifecycle ends. Only the faults that need a short limit set one.
	quick := func(c actors.Config) actors.Config {
		c.PingInterval, c.PingTimeout, c.CloseTimeout = 50*time.Millisecond, 10*time.Second, 10*time.Second
		return c
	}
	closeIt := func(s *actor.ActorSystem, pid *actor.PID, _ int) { s.Root.Send(pid, &messages.Close{}) }
	// crashIt crashes the child on cue (exit 3) once it runs: the restarted child does
	// not crash again, so the lifecycle does not race the machine's load.
	crashIt := func(s *actor.ActorSystem, pid *actor.PID, _ int) { s.Root.Send(pid, &messages.Send{Kind: "exit"}) }
	return []fault{
		{name: "crash", config: func() actors.Config { return quick(workerConfig("crash", nil)) }, reason: messages.ReasonCrashed},
		{name: "hang", config: func() actors.Config {
			c := quick(workerConfig("healthy", nil))
			c.PingTimeout = 400 * time.Millisecond // stopped: it never answers again
			return c
		},
			act:    func(_ *actor.ActorSystem, _ *actor.PID, ospid int) { syscall.Kill(ospid, syscall.SIGSTOP) },
			reason: messages.ReasonUnresponsive, killed: true},
		{name: "garbage", config: func() actors.Config { return quick(rawConfig("garbage")) }, reason: messages.ReasonProtocolError, killed: true},
		{name: "memory", config: func() actors.Config {
			c := quick(workerConfig("memhog", nil))
			c.MemoryLimitMB, c.MemorySampleInterval = 100, 20*time.Millisecond
			return c
		}, reason: messages.ReasonMemoryLimit, killed: true},
		{name: "ignore-shutdown", config: func() actors.Config {
			c := quick(workerConfig("ignoreshutdown", nil))
			c.CloseTimeout = 300 * time.Millisecond // it never exits by itself
			return c
		}, act: closeIt, reason: messages.ReasonClosed, killed: true},
		{name: "exit-during-init", config: func() actors.Config { return quick(workerConfig("initcrash", nil)) }, reason: messages.ReasonInitFailed},
		{name: "close", config: func() actors.Config { return quick(workerConfig("healthy", nil)) }, act: closeIt, reason: messages.ReasonClosed},
		{name: "kill", config: func() actors.Config { return quick(workerConfig("healthy", nil)) },
			act:    func(s *actor.ActorSystem, pid *actor.PID, _ int) { s.Root.Send(pid, &messages.Kill{}) },
			reason: messages.ReasonKilled, killed: true},
		{name: "tree-restart", config: func() actors.Config {
			c := quick(workerConfig("healthy", nil))
			c.Restart = actors.Permanent
			return c
		}, act: crashIt, tree: true, reason: messages.ReasonCrashed},
	}
}

// soakTB turns a probe's failure into a panic the lifecycle recovers as its error.
type soakTB struct {
	mu       sync.Mutex
	cleanups []func()
}

type soakFailure string

func (*soakTB) Helper()                      {}
func (*soakTB) Errorf(f string, args ...any) { panic(soakFailure(fmt.Sprintf(f, args...))) }
func (*soakTB) Fatalf(f string, args ...any) { panic(soakFailure(fmt.Sprintf(f, args...))) }
func (s *soakTB) Cleanup(f func())           { s.mu.Lock(); s.cleanups = append(s.cleanups, f); s.mu.Unlock() }
func (s *soakTB) runCleanups() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

// runLifecycle runs one process actor through f and checks it ends as f says.
func runLifecycle(system *actor.ActorSystem, f fault) (err error) {
	tb := &soakTB{}
	defer tb.runCleanups()
	defer func() {
		if v := recover(); v != nil {
			if msg, ok := v.(soakFailure); ok {
				err = fmt.Errorf("%s: %s", f.name, msg)
				return
			}
			panic(v)
		}
	}()
	var strategy actor.SupervisorStrategy
	if f.tree {
		strategy = actors.NewStrategy(actors.Backoff{Initial: 10 * time.Millisecond, MaxRestarts: 100, Window: time.Minute})
	}
	probe := actortest.NewProbe(tb, system, strategy)
	pid := probe.Spawn(mustProps(f.config()), "proc")
	probe.Watch(pid)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		actors.StopAndWait(ctx, system, pid)
	})
	if f.act != nil {
		run := running(probe)
		f.act(system, pid, run.OSPid)
	}
	ex := exited(probe)
	if ex.Reason != f.reason || ex.Killed != f.killed {
		return fmt.Errorf("%s: ended %v, want %v (killed %v)", f.name, ex, f.reason, f.killed)
	}
	if f.tree {
		again := actortest.ExpectType(probe, 10*time.Second, func(e *messages.StateChanged) bool {
			return e.To == messages.Running && e.OSPid != ex.OSPid
		})
		system.Root.Send(pid, &messages.Close{})
		if ex2 := exited(probe); ex2.Reason != messages.ReasonClosed || ex2.OSPid != again.OSPid {
			return fmt.Errorf("%s: after the restart, ended %v", f.name, ex2)
		}
	}
	terminated(probe, pid)
	return nil
}

// TestChaosSoak runs concurrent process actors through randomized lifecycles, each
// ending in the reason its fault should give, and then finds nothing leaked.
// PROCSUP_SOAK_LIFECYCLES sets how many (CI runs a bounded number), PROCSUP_SOAK_SEED
// replays a run.
func TestChaosSoak(t *testing.T) {
	lifecycles := 90
	if n, err := strconv.Atoi(os.Getenv("PROCSUP_SOAK_LIFECYCLES")); err == nil && n > 0 {
		lifecycles = n
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("PROCSUP_SOAK_SEED"), 10, 64); err == nil {
		seed = s
	}
	const concurrency = 8
	t.Logf("seed %d (PROCSUP_SOAK_SEED=%d replays it), %d lifecycles, %d at a time", seed, seed, lifecycles, concurrency)
	system := newSystem(t)
	actorsBefore := actorCount(system)
	runLifecycle(system, chaosFaults()[6]) // warm up: the starter thread, the runtime's threads
	threadsBefore := actortest.CountThreads()
	goroutinesBefore, fdsBefore := actortest.CountGoroutines(), actortest.CountFDs()

	faults := chaosFaults()
	var next, injected atomic.Int64
	var mu sync.Mutex
	var failures []error
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(lifecycles) {
					return
				}
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				f := faults[rng.IntN(len(faults))]
				if f.reason != messages.ReasonClosed || f.killed {
					injected.Add(1)
				}
				if err := runLifecycle(system, f); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Errorf("lifecycle %d: %w", i, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	leaks := 0
	within(t, 10*time.Second, "every actor gone", func() bool { return actorCount(system) <= actorsBefore })
	if kids := actortest.ChildPIDs(); len(kids) > 0 {
		leaks += len(kids)
		t.Errorf("child processes left: %v", kids)
	}
	settled := time.Now().Add(10 * time.Second)
	for (actortest.CountGoroutines() > goroutinesBefore || actortest.CountFDs() > fdsBefore) && time.Now().Before(settled) {
		time.Sleep(10 * time.Millisecond)
	}
	if g, f := actortest.CountGoroutines(), actortest.CountFDs(); g > goroutinesBefore || f > fdsBefore {
		leaks++
		t.Errorf("goroutines %d -> %d, descriptors %d -> %d", goroutinesBefore, g, fdsBefore, f)
	}
	if threads := actortest.CountThreads(); threads > threadsBefore+8 {
		leaks++
		t.Errorf("threads grew from %d to %d", threadsBefore, threads)
	}
	t.Logf("lifecycles run %d, faults injected %d, failures %d, leaks found %d",
		lifecycles, injected.Load(), len(failures), leaks)
}

// actorCount counts the system's registered processes, less procsup's two that are no
// actors and stay with the system: the senders of requests (package reply) and the
// process actors' gates.
func actorCount(system *actor.ActorSystem) int {
	n := 0
	for _, m := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += m.Count()
	}
	for _, id := range []string{"procsup-replies", "procsup-gates"} {
		if _, ok := system.ProcessRegistry.GetLocal(id); ok {
			n--
		}
	}
	return n
}
