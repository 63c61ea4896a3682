package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// Acquire asks pool for a ready process and waits for it within ctx. Release it with
// [Release] when done.
func Acquire(ctx context.Context, system *actor.ActorSystem, pool *actor.PID) (*actor.PID, error) {
	deadline, ok := ctx.Deadline()
	wait := time.Hour
	if ok {
		wait = time.Until(deadline) + time.Second // the pool answers by the deadline itself
	}
	began := time.Now()
	defer func() { metricsOf(system).waited(metricName(pool.GetId()), time.Since(began)) }()
	f := system.Root.RequestFuture(pool, &messages.Acquire{Deadline: deadline}, wait)
	type result struct {
		a   *messages.Acquired
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := f.Result()
		a, ok := res.(*messages.Acquired)
		if err == nil && !ok {
			err = fmt.Errorf("%w: %s answered Acquire with %T", ErrNotPool, pool.GetId(), res)
		}
		done <- result{a, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("procsup: acquire: %w", r.err)
		}
		return r.a.PID, r.a.Err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && ok {
			// The pool answers by the deadline itself, with its own error or a process.
			r := <-done
			if r.err != nil {
				return nil, fmt.Errorf("procsup: acquire: %w", r.err)
			}
			return r.a.PID, r.a.Err
		}
		go func() { // a process handed out after all goes straight back
			if r := <-done; r.a != nil && r.a.PID != nil {
				Release(system, pool, r.a.PID)
			}
		}()
		return nil, ctx.Err()
	}
}

// Release gives proc back to pool.
func Release(system *actor.ActorSystem, pool, proc *actor.PID) {
	system.Root.Send(pool, &messages.Release{PID: proc})
}
