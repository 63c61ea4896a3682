package actors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/internal/reply"
	"github.com/procsup/procsup/messages"
)

// acquireGrace is how long Acquire waits past ctx's deadline for the pool, which answers
// by the deadline itself, with a process or its own error.
const acquireGrace = time.Second

// Acquire asks pool for a ready process and waits for it within ctx. Release it with
// [Release] when done. A process the pool hands out after Acquire returned goes back to
// it at once.
func Acquire(ctx context.Context, system *actor.ActorSystem, pool *actor.PID) (*actor.PID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline, hasDeadline := ctx.Deadline()
	began := time.Now()
	defer func() { metricsOf(system).waited(metricName(pool.GetId()), time.Since(began)) }()

	slot := reply.NewSlot()
	var mu sync.Mutex
	left := false // the caller returned: a process handed out now goes back
	giveBack := func(m any) {
		if a, ok := m.(*messages.Acquired); ok && a.PID != nil {
			Release(system, pool, a.PID)
		}
	}
	sender := reply.Of(system).Open(func(m any) {
		mu.Lock()
		gone := left
		if !gone {
			slot.Put(m)
		}
		mu.Unlock()
		if gone {
			giveBack(m)
		}
	})
	system.Root.RequestWithCustomSender(pool, &messages.Acquire{Deadline: deadline}, sender)
	res, err := slot.Wait(ctx)
	if err != nil && hasDeadline && ctx.Err() == context.DeadlineExceeded {
		grace, cancel := context.WithTimeout(context.Background(), acquireGrace)
		res, err = slot.Wait(grace)
		cancel()
	}
	if err != nil {
		mu.Lock()
		left = true
		m, got := slot.Take()
		mu.Unlock()
		if got {
			giveBack(m)
		}
		return nil, ctx.Err()
	}
	switch a := res.(type) {
	case *messages.Acquired:
		return a.PID, a.Err
	case *actor.DeadLetterResponse:
		return nil, fmt.Errorf("%w: %s has stopped", ErrPoolDraining, pool.GetId())
	}
	return nil, fmt.Errorf("%w: %s answered Acquire with %T", ErrNotPool, pool.GetId(), res)
}

// Release gives proc back to pool.
func Release(system *actor.ActorSystem, pool, proc *actor.PID) {
	system.Root.Send(pool, &messages.Release{PID: proc})
}
