package actors

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
)

type numbered struct{ n int }

func TestClockDeliversInOrderAndCancels(t *testing.T) {
	system := QuietSystem(t)
	probe := actortest.NewProbe(t, system, nil)
	// Periods of 5 ms give a 1 ms grid: due times 10 ms apart stay in order.
	for _, n := range []int{3, 1, 2} {
		tickAfter(system, time.Duration(n)*10*time.Millisecond, 5*time.Millisecond, probe.PID, &numbered{n})
	}
	cancel := tickAfter(system, 15*time.Millisecond, 5*time.Millisecond, probe.PID, &numbered{99})
	cancel()
	for want := 1; want <= 3; want++ {
		if got := actortest.ExpectType[*numbered](probe, 5*time.Second); got.n != want {
			t.Fatalf("tick %d arrived in place %d", got.n, want)
		}
	}
	probe.ExpectNoMessage(50*time.Millisecond, nil) // the cancelled tick
	theClock.mu.Lock()
	defer theClock.mu.Unlock()
	if len(theClock.ticks) != 0 {
		t.Fatalf("%d ticks left on the clock", len(theClock.ticks))
	}
}

// Ticks of many processes with the same period and random phases share a few due
// times: that is what makes one pass serve many children.
func TestClockBatchesTicksOnItsGrid(t *testing.T) {
	system := QuietSystem(t)
	period := 2500 * time.Millisecond
	var cancels []func()
	for range 1000 {
		cancels = append(cancels, tickAfter(system, rand.N(period), period, nil, nil))
	}
	g := grain(period)
	theClock.mu.Lock()
	dues := map[int64]bool{}
	for _, tk := range theClock.ticks {
		if tk.due%int64(g) != 0 {
			t.Errorf("due time %d is off the %v grid", tk.due, g)
		}
		dues[tk.due] = true
	}
	theClock.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	if limit := int(period/g) + 1; len(dues) > limit {
		t.Fatalf("1000 ticks over %v fall on %d due times, want at most %d", period, len(dues), limit)
	}
	theClock.mu.Lock()
	defer theClock.mu.Unlock()
	if len(theClock.ticks) != 0 || theClock.at != 0 {
		t.Fatalf("cancelled ticks left the clock armed: %d ticks, at %d", len(theClock.ticks), theClock.at)
	}
}

func TestGrain(t *testing.T) {
	for _, c := range []struct{ period, want time.Duration }{
		{time.Microsecond, time.Millisecond},
		{2500 * time.Millisecond, 500 * time.Millisecond},
		{time.Hour, maxGrain},
	} {
		if got := grain(c.period); got != c.want {
			t.Errorf("grain(%v) = %v, want %v", c.period, got, c.want)
		}
	}
}
