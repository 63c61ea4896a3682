package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// DefaultSnapshotTimeout bounds Snapshot when ctx has no deadline.
const DefaultSnapshotTimeout = 2 * time.Second

// Snapshot returns the state of the actor at pid (a tree, a pool or a process actor) and
// of everything below it: each process's state, OS pid, restarts, uptime, last reason
// and error, memory, CPU and last ping round trip, with counts by state at every level.
// The actors are asked in parallel, each within ctx (DefaultSnapshotTimeout when it has
// no deadline): one that does not answer in time shows as "unanswered" with the reason,
// and Snapshot returns all the same. An actor below pid that stopped while the snapshot
// was taken (a pool's member closed, say) is left out: it is no longer there.
func Snapshot(ctx context.Context, system *actor.ActorSystem, pid *actor.PID) *messages.Snapshot {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultSnapshotTimeout)
		defer cancel()
	}
	s, _ := snapshot(ctx, system, pid)
	return s
}

// snapshot gathers pid's snapshot; stopped reports that pid had stopped (a dead letter).
func snapshot(ctx context.Context, system *actor.ActorSystem, pid *actor.PID) (_ *messages.Snapshot, stopped bool) {
	id := pid.GetId()
	s := &messages.Snapshot{Name: id[strings.LastIndexByte(id, '/')+1:], ID: id, Counts: map[string]int{}}
	res, err := call(ctx, system, pid, &messages.GetSnapshot{})
	var below []*actor.PID
	switch r := res.(type) {
	case *messages.Status:
		s.Kind, s.Process = "process", r.View()
		s.Counts[s.Process.State]++
	case *messages.TreeInfo:
		s.Kind, s.Failed, s.Stopped, below = "tree", r.Failed, r.Stopped, r.Children
	case *messages.PoolInfo:
		status := r.Status
		s.Kind, s.Pool, below = "pool", &status, r.Members
	default:
		if err == nil {
			err = fmt.Errorf("%w: %s answered GetSnapshot with %T", ErrNotProcess, id, res)
		}
		s.Kind, s.Error = "unanswered", err.Error()
		s.Counts["unanswered"]++
		stopped = errors.Is(err, ErrNotRunning)
	}
	children := make([]*messages.Snapshot, len(below))
	gone := make([]bool, len(below))
	var wg sync.WaitGroup
	for i, c := range below {
		wg.Go(func() { children[i], gone[i] = snapshot(ctx, system, c) })
	}
	wg.Wait()
	for i, c := range children {
		if gone[i] {
			continue // it stopped while the snapshot was taken: no longer there
		}
		s.Children = append(s.Children, c)
		for state, n := range c.Counts {
			s.Counts[state] += n
		}
	}
	return s, stopped
}
