package actors

import (
	"container/heap"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The periodic work of every supervised process (its pings and its memory samples) is
// timed by one clock for the whole program instead of a timer per process. Each tick's
// due time is rounded up to a grid of a fifth of its period, so the ticks of many
// processes fall on the same instant and are delivered in one pass: a thousand idle
// children with the default intervals wake the parent about twice a second for their
// pings (two hundred at a time; BenchmarkIdleChildren counts no HighPing) instead of
// four hundred times. An idle program holds no goroutine for it: between passes there
// is one runtime timer, and none when nothing is due.

// maxGrain is the coarsest grid: a tick of a long period comes at most this late.
const maxGrain = time.Second

// grain is the grid of a tick of a task repeated every period: period/5, between 1 ms
// and maxGrain, so a tick is never more than a fifth of its period late.
func grain(period time.Duration) time.Duration {
	return min(max(period/5, time.Millisecond), maxGrain)
}

// tickAfter sends msg to pid from outside any actor about d from now, for a task
// repeated every period: late by less than grain(period). The returned func cancels it.
func tickAfter(system *actor.ActorSystem, d, period time.Duration, pid *actor.PID, msg any) func() {
	g := int64(grain(period))
	due := monoNow() + int64(d)
	due += (g - due%g) % g
	t := &tick{due: due, system: system, pid: pid, msg: msg}
	theClock.add(t)
	return func() { theClock.remove(t) }
}

// tick is one scheduled message.
type tick struct {
	due    int64 // monoNow
	system *actor.ActorSystem
	pid    *actor.PID
	msg    any
	index  int // in the heap; -1 once delivered or cancelled
}

// clock delivers ticks: a heap of them by due time and the runtime timer of the earliest.
type clock struct {
	mu    sync.Mutex
	ticks tickHeap
	timer *time.Timer
	at    int64 // due time the timer is set for; 0 when it is not set
}

var theClock clock

func (c *clock) add(t *tick) {
	c.mu.Lock()
	defer c.mu.Unlock()
	heap.Push(&c.ticks, t)
	c.arm()
}

func (c *clock) remove(t *tick) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index >= 0 {
		heap.Remove(&c.ticks, t.index)
	}
	if len(c.ticks) == 0 && c.timer != nil {
		c.timer.Stop()
		c.at = 0
	}
}

// arm sets the timer for the earliest tick unless it is set for that already (or
// earlier). c.mu is held.
func (c *clock) arm() {
	if len(c.ticks) == 0 {
		return
	}
	due := c.ticks[0].due
	if c.at != 0 && c.at <= due {
		return
	}
	c.at = due
	d := time.Duration(due - monoNow())
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.pass)
		return
	}
	c.timer.Reset(d)
}

// pass delivers every tick that is due, on the timer's goroutine.
func (c *clock) pass() {
	var due []*tick
	c.mu.Lock()
	now := monoNow()
	for len(c.ticks) > 0 && c.ticks[0].due <= now {
		due = append(due, heap.Pop(&c.ticks).(*tick))
	}
	c.at = 0
	c.arm()
	c.mu.Unlock()
	for _, t := range due {
		t.system.Root.Send(t.pid, t.msg)
	}
}

// tickHeap is a container/heap of ticks, earliest first.
type tickHeap []*tick

func (h tickHeap) Len() int           { return len(h) }
func (h tickHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h tickHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *tickHeap) Push(x any) {
	t := x.(*tick)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *tickHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
