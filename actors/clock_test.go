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
	var cancelled repeat
	cancelled.first(system, time.Hour, time.Hour, probe.PID, &numbered{99})
	cancelled.stop()
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

// A burst of due ticks is delivered passMax at a time, earliest first, each pass setting
// the timer a step away while more are due; the last sets it for the next tick not yet
// due.
func TestClockPacesABurstOfTicks(t *testing.T) {
	const n = 2*passMax + 3
	c, probe, later := burstClock(t, n)
	passes := 0
	for next := 1; next <= n; {
		c.pass()
		passes++
		for range min(passMax, n-next+1) {
			if got := actortest.ExpectType[*numbered](probe, 5*time.Second); got.n != next {
				t.Fatalf("pass %d: tick %d arrived in place %d", passes, got.n, next)
			}
			next++
		}
		c.mu.Lock()
		left, at := len(c.ticks), c.at
		c.mu.Unlock()
		if left != n-next+2 {
			t.Fatalf("after pass %d, %d ticks on the clock, want %d", passes, left, n-next+2)
		}
		in := time.Duration(at - monoNow())
		switch {
		case next <= n && (in < 59*time.Minute || at >= later.due):
			t.Fatalf("after pass %d, with ticks due, the timer is set for %v from now, want a step (1h)", passes, in)
		case next > n && at != later.due:
			t.Fatalf("after the last pass, the timer is set for %v from now, want the next tick's due time, %v", in, time.Duration(later.due-monoNow()))
		}
	}
}

// A burst of more than pacePasses×passMax ticks is delivered a pacePasses-th a pass
// (rounded up), earliest first: a burst of any size is spread over about pacePasses
// passes, so the clock keeps up with any number of ticks.
func TestClockSpreadsABigBurstOverAFewPasses(t *testing.T) {
	const n = 4*pacePasses*passMax + 1
	c, probe, _ := burstClock(t, n)
	c.mu.Lock()
	due := c.ticks.countDue(monoNow())
	c.mu.Unlock()
	if due != n {
		t.Fatalf("countDue says %d ticks are due, want %d", due, n)
	}
	c.pass()
	want := (n + pacePasses - 1) / pacePasses
	for i := 1; i <= want; i++ {
		if got := actortest.ExpectType[*numbered](probe, 5*time.Second); got.n != i {
			t.Fatalf("tick %d arrived in place %d", got.n, i)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if left := len(c.ticks); left != n-want+1 {
		t.Fatalf("one pass over %d due ticks left %d on the clock, want %d (a %dth delivered)", n, left, n-want+1, pacePasses)
	}
}

// burstClock is a clock of the test's own, its step an hour so that only the test's
// calls make passes, holding ticks numbered 1 to n, all due, and later (numbered 0),
// due in two hours. Its timer is stopped when the test ends.
func burstClock(t *testing.T, n int) (c *clock, probe *actortest.Probe, later *tick) {
	system := QuietSystem(t)
	probe = actortest.NewProbe(t, system, nil)
	c = &clock{step: time.Hour}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.timer != nil {
			c.timer.Stop()
		}
	})
	past := monoNow() - int64(time.Second)
	later = &tick{due: monoNow() + int64(2*time.Hour), system: system, pid: probe.PID, msg: &numbered{0}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := n; i >= 1; i-- { // pushed latest first
		heap.Push(&c.ticks, &tick{due: past + int64(i), system: system, pid: probe.PID, msg: &numbered{i}})
	}
	heap.Push(&c.ticks, later)
	return c, probe, later
}

// Ticks of many processes with the same period and random phases share a few due
// times: that is what makes one pass serve many children.
func TestClockBatchesTicksOnItsGrid(t *testing.T) {
	system := QuietSystem(t)
	period := 2500 * time.Millisecond
	repeats := make([]repeat, 1000)
	for i := range repeats {
		repeats[i].first(system, rand.N(period), period, nil, nil)
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
	for i := range repeats {
		repeats[i].stop()
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

// A repeated task's tick is due a period after the one before, even when that one was
// handled late (a tick due on the grid point just past, as every tick is handled); a
// period that is not a whole number of grains stays within half a grain of it; after
// a stall of more than a period, the next tick is on the next grid point from now, and
// the missed ones are skipped.
func TestRepeatKeepsItsPeriod(t *testing.T) {
	system := QuietSystem(t)
	for _, period := range []time.Duration{2500 * time.Millisecond, time.Hour, 7*time.Second + 3} {
		g := int64(grain(period))
		now := monoNow()
		r := repeat{due: now - now%g}
		r.next(system, period, nil, nil)
		r.stop()
		if d := r.due - (now - now%g); d < int64(period)-g/2 || d > int64(period)+g/2 || r.due%g != 0 {
			t.Errorf("period %v: the tick after one due %v ago is due %v later, want %v (within %v, on the grid)",
				period, time.Duration(monoNow()-(now-now%g)), time.Duration(d), period, time.Duration(g/2))
		}
		if period == 2500*time.Millisecond && r.due-(now-now%g) != int64(period) {
			t.Errorf("period %v: the next tick is due %v after the last, want exactly the period", period, time.Duration(r.due-(now-now%g)))
		}
		stalled := repeat{due: now - now%g - 10*int64(period)}
		stalled.next(system, period, nil, nil)
		stalled.stop()
		if after := stalled.due - monoNow(); after < -g || after > g || stalled.due%g != 0 {
			t.Errorf("period %v: after a stall of ten periods, the next tick is due %v from now, want the next grid point (%v)",
				period, time.Duration(after), time.Duration(g))
		}
	}
	theClock.mu.Lock()
	defer theClock.mu.Unlock()
	if len(theClock.ticks) != 0 {
		t.Fatalf("%d ticks left on the clock", len(theClock.ticks))
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
