package actors

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
)

type numbered struct{ n int }

// Ticks are delivered earliest first, whatever order they were added in, and a
// cancelled tick is never delivered. The ticks are put on the clock together (under its
// lock) with due times already past, so that one pass delivers them: how late the test's
// goroutine or the timer runs on a busy machine does not change what is checked.
func TestClockDeliversInOrderAndCancels(t *testing.T) {
	system := QuietSystem(t)
	probe := actortest.NewProbe(t, system, nil)
	past := monoNow() - int64(time.Second)
	theClock.mu.Lock()
	for _, n := range []int{3, 1, 2} {
		heap.Push(&theClock.ticks, &tick{due: past + int64(n)*int64(time.Millisecond), system: system, pid: probe.PID, msg: &numbered{n}})
	}
	dropped := &tick{due: past + 2*int64(time.Millisecond) - 1, system: system, pid: probe.PID, msg: &numbered{98}}
	heap.Push(&theClock.ticks, dropped)
	heap.Remove(&theClock.ticks, dropped.index)
	theClock.arm()
	theClock.mu.Unlock()
	cancel := tickAfter(system, time.Hour, time.Hour, probe.PID, &numbered{99})
	cancel()
	for want := 1; want <= 3; want++ {
		if got := actortest.ExpectType[*numbered](probe, 5*time.Second); got.n != want {
			t.Fatalf("tick %d arrived in place %d", got.n, want)
		}
	}
	probe.ExpectNoMessage(50*time.Millisecond, nil) // neither removed tick
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
