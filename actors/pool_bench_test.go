package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
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
