package actors_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

// BenchmarkAcquireWarm: Acquire from a pool with idle processes ready. Every 100th
// iteration also times a cold start (a process actor spawned until running, as in
// BenchmarkSpawnToReady); x-faster is cold over warm.
func BenchmarkAcquireWarm(b *testing.B) {
	system := actors.QuietSystem(b)
	props, err := actors.NewPool(actors.PoolConfig{Process: echoConfig(b), Target: 2, Reuse: true})
	if err != nil {
		b.Fatal(err)
	}
	ready := make(chan struct{}, 16)
	running := make(chan struct{}, 16)
	sub := system.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.PoolEvent:
			if e.Kind == messages.PoolReady {
				select { // EventStream handlers run on the publisher's goroutine: never block
				case ready <- struct{}{}:
				default:
				}
			}
		case *messages.StateChanged:
			if e.To == messages.Running {
				select {
				case running <- struct{}{}:
				default:
				}
			}
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	pool := system.Root.Spawn(props)
	defer actors.StopAndWait(context.Background(), system, pool)
	<-ready
	<-ready
	cold, _ := actors.NewProcess(echoConfig(b))
	var warm, colds time.Duration
	var nCold int
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		proc, err := actors.Acquire(ctx, system, pool)
		if err != nil {
			b.Fatal(err)
		}
		warm += time.Since(began)
		b.StopTimer()
		actors.Release(system, pool, proc)
		if i%100 == 0 {
			for len(running) > 0 {
				<-running
			}
			began = time.Now()
			pid := system.Root.Spawn(cold)
			<-running
			colds += time.Since(began)
			nCold++
			actors.StopAndWait(ctx, system, pid)
		}
		b.StartTimer()
	}
	b.ReportMetric((float64(colds)/float64(nCold))/(float64(warm)/float64(b.N)), "x-faster")
}

// BenchmarkRollout: a rolling replacement of a pool of 8 ready processes (Rollout, the
// same binary with another environment, MaxSurge 2) until it is done, against 8 cold
// starts in the same iteration (a new pool of 8 until all are ready, under the same
// limiter). x-cold is their ratio. StableAfter is a millisecond: the figure is the
// replacement's, not the time a new process must stay up before the rollout is done.
func BenchmarkRollout(b *testing.B) {
	const n = 8
	system := actors.QuietSystem(b)
	events := make(chan any, 1024)
	sub := system.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.Rollout:
			if e.Kind == messages.RolloutDone || e.Kind == messages.RolloutAborted {
				events <- e
			}
		case *messages.PoolEvent:
			if e.Kind == messages.PoolReady {
				events <- e
			}
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	readyPool := func() *actor.PID {
		props, err := actors.NewPool(actors.PoolConfig{Process: echoConfig(b), Target: n, Reuse: true, MaxSurge: 2,
			StableAfter: time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		pool := system.Root.Spawn(props)
		for seen := 0; seen < n; {
			if _, ok := (<-events).(*messages.PoolEvent); ok {
				seen++
			}
		}
		return pool
	}
	var rolling, cold time.Duration
	for i := range b.N {
		began := time.Now()
		pool := readyPool()
		cold += time.Since(began)
		next := echoConfig(b)
		next.Launcher.(*launch.Command).Env = append(next.Launcher.(*launch.Command).Env, fmt.Sprint("GEN=", i))
		began = time.Now()
		if err := actors.Rollout(system, pool, next); err != nil {
			b.Fatal(err)
		}
		for done := false; !done; {
			switch e := (<-events).(type) {
			case *messages.Rollout:
				if e.Kind == messages.RolloutAborted {
					b.Fatal(e)
				}
				done = true
			}
		}
		rolling += time.Since(began)
		actors.StopAndWait(context.Background(), system, pool)
	}
	b.ReportMetric(float64(rolling)/float64(cold), "x-cold")
	b.ReportMetric(float64(rolling.Milliseconds())/float64(b.N), "rollout-ms")
	b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "cold-ms")
}
