package actors_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
)

// BenchmarkPingUnderBulk measures the ping round trip while 15 MiB Asks (under the 16 MiB
// cap) go to the child and back, against the idle ping round trip of the same child in the
// same run. Every pong is reported (a HighPing threshold of 1 ns), so the figures are the
// parent's own round trips. ns/op is one 15 MiB Ask; idle-p50-us, bulk-p50-us and
// bulk-max-us are ping round trips; x-idle is bulk p50 over idle p50.
func BenchmarkPingUnderBulk(b *testing.B) {
	system := actors.QuietSystem(b)
	cfg := echoConfig(b)
	cfg.PingInterval = 10 * time.Millisecond
	cfg.HighPingThreshold = time.Nanosecond
	var mu sync.Mutex
	var rtts []time.Duration
	sub := system.EventStream.Subscribe(func(ev any) {
		if hp, ok := ev.(*messages.HighPing); ok {
			mu.Lock()
			rtts = append(rtts, hp.RTT)
			mu.Unlock()
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	props, err := actors.NewProcess(cfg)
	if err != nil {
		b.Fatal(err)
	}
	pid := system.Root.Spawn(props)
	defer actors.StopAndWait(context.Background(), system, pid)
	ctx := context.Background()
	if _, err := actors.Ask(ctx, system, pid, "echo", []byte("warm")); err != nil {
		b.Fatal(err)
	}
	take := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		out := rtts
		rtts = nil
		return out
	}
	for len(take()) == 0 { // pings flowing
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	idle := take()
	body := make([]byte, 15<<20)
	if _, err := actors.Ask(ctx, system, pid, "echo", body); err != nil { // the heaps grown once
		b.Fatal(err)
	}
	take()
	b.ResetTimer()
	for range b.N {
		if _, err := actors.Ask(ctx, system, pid, "echo", body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	bulk := take()
	if len(idle) == 0 || len(bulk) == 0 {
		b.Fatalf("pongs: %d idle, %d under bulk", len(idle), len(bulk))
	}
	slices.Sort(idle)
	slices.Sort(bulk)
	i50, b50 := idle[len(idle)/2], bulk[len(bulk)/2]
	b.ReportMetric(float64(i50.Microseconds()), "idle-p50-us")
	b.ReportMetric(float64(b50.Microseconds()), "bulk-p50-us")
	b.ReportMetric(float64(bulk[len(bulk)-1].Microseconds()), "bulk-max-us")
	b.ReportMetric(float64(b50)/float64(i50), "x-idle")
}
