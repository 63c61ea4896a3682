package procsup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages"
)

// A snapshot of a tree with a pool and an actor that never answers: the pool's
// processes are there, the silent actor shows as unanswered (not a hang), the counts
// add up.
func TestSnapshotOfATreeWithAPoolAndASilentActor(t *testing.T) {
	system := newSystem(t)
	pool, err := actors.NewPool(actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 2})
	if err != nil {
		t.Fatal(err)
	}
	silent := actor.PropsFromFunc(func(actor.Context) {})
	probe, tree := spawnTree(t, system, nil,
		actors.Spec{Name: "worker", Props: mustProps(workerConfig("healthy", nil))},
		actors.Spec{Name: "pool", Props: pool},
		actors.Spec{Name: "silent", Props: silent})
	running(probe)
	poolEvent(probe, messages.PoolReady)
	poolEvent(probe, messages.PoolReady)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s := actors.Snapshot(ctx, system, tree)
	if s.Kind != "tree" || len(s.Children) != 3 {
		t.Fatalf("snapshot %+v", s)
	}
	worker, p, quiet := s.Children[0], s.Children[1], s.Children[2]
	if worker.Kind != "process" || worker.Process.State != "running" || worker.Process.PingRTT < 0 {
		t.Fatalf("worker %+v", worker)
	}
	if p.Kind != "pool" || p.Pool.Idle != 2 || len(p.Children) != 2 || p.Children[0].Kind != "process" {
		t.Fatalf("pool %+v", p)
	}
	if quiet.Kind != "unanswered" || quiet.Error == "" {
		t.Fatalf("silent %+v", quiet)
	}
	if s.Counts["running"] != 3 || s.Counts["unanswered"] != 1 {
		t.Fatalf("counts %v", s.Counts)
	}
	if problems := s.Problems(); len(problems) != 1 || !strings.Contains(problems[0], "silent") {
		t.Fatalf("problems %v", problems)
	}
}

// A pool whose starts fail is a problem of its snapshot until a start succeeds.
func TestSnapshotOfAPoolWhoseStartsFail(t *testing.T) {
	system := newSystem(t)
	_, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("initfail", nil), Target: 1,
		Backoff: actors.Backoff{Initial: time.Hour}})
	within(t, time.Minute, "a failed start", func() bool { return poolStatus(t, system, pool).Failures > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if problems := actors.Snapshot(ctx, system, pool).Problems(); len(problems) != 1 || !strings.Contains(problems[0], "starts in a row failed") {
		t.Fatalf("problems %v", problems)
	}
}

// spawnTree spawns a tree of specs under a probe.
func spawnTree(t *testing.T, system *actor.ActorSystem, strategy actor.SupervisorStrategy, specs ...actors.Spec) (*actortest.Probe, *actor.PID) {
	t.Helper()
	probe := actortest.NewProbe(t, system, nil)
	pid := probe.Spawn(actors.NewTree(strategy, specs...), "tree")
	stopAtEnd(t, system, pid)
	return probe, pid
}

// A member that stops while the snapshot is taken (a pool's process closed, say) is no
// longer there: it is left out, and it is no problem for the health check.
func TestSnapshotLeavesOutWhatStoppedMeanwhile(t *testing.T) {
	system := newSystem(t)
	gone := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := system.Root.StopFuture(gone).Wait(); err != nil {
		t.Fatal(err)
	}
	alive := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*messages.GetSnapshot); ok {
			c.Respond(&messages.Status{State: messages.Running})
		}
	}))
	stopAtEnd(t, system, alive)
	pool := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*messages.GetSnapshot); ok {
			c.Respond(&messages.PoolInfo{Members: []*actor.PID{gone, alive}})
		}
	}))
	stopAtEnd(t, system, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := actors.Snapshot(ctx, system, pool)
	if len(s.Children) != 1 || s.Children[0].ID != alive.Id || s.Counts["unanswered"] != 0 {
		t.Fatalf("snapshot %+v, want the live member alone", s)
	}
	if problems := s.Problems(); len(problems) != 0 {
		t.Fatalf("problems %v, want none", problems)
	}
	// The actor asked for the snapshot is gone itself: that is a problem.
	if problems := actors.Snapshot(ctx, system, gone).Problems(); len(problems) != 1 {
		t.Fatalf("problems of a stopped actor's snapshot: %v", problems)
	}
}
