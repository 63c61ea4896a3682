package actors

import (
	"cmp"
	"container/heap"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The periodic work of every supervised process (its pings and its memory samples) is
// timed by one clock for the whole program instead of a timer per process. Each tick's
// due time is rounded up to a grid of a fifth of its period, so the ticks of many
// processes fall on the same instant and are delivered together. A pass delivers
// passMax ticks (or a pacePasses-th of a bigger burst) and leaves the rest to passes
// paceStep apart: each tick wakes a child, and a large batch at once would queue ahead
// of everything else the program runs. An idle program holds no goroutine for it:
// between passes there is one runtime timer, and none when nothing is due.

// passMax is the most ticks one pass delivers, and paceStep the time to the next pass
// when more are due; but when more than pacePasses×passMax are due, a pass delivers a
// pacePasses-th of them, so that a burst of any size is spread over about pacePasses
// passes and the clock keeps up with any number of ticks (eight a pass would cap it at
// 8,000 a second). A pass that comes late does not deliver more to catch up: when the
// program is too busy to run its timer on time, the ticks wait with it.
const (
	passMax    = 8
	paceStep   = time.Millisecond
	pacePasses = 25
)

// maxGrain is the coarsest grid: a tick of a long period comes at most this late.
const maxGrain = time.Second

// grain is the grid of a tick of a task repeated every period: period/5, between 1 ms
// and maxGrain, so a tick is never more than a fifth of its period late.
func grain(period time.Duration) time.Duration {
	return min(max(period/5, time.Millisecond), maxGrain)
}

// repeat is the ticks of a task repeated every period, each sent to pid from outside
// any actor. A tick is due a period after the one before, however late that one was
// handled (so the period is kept, not stretched by a grain at every tick), and comes
// late by less than grain(period). The zero value has no tick on the clock.
type repeat struct {
	due    int64 // monoNow of the last tick put on the clock
	cancel func()
}

// first puts the task's first tick about d from now.
func (r *repeat) first(system *actor.ActorSystem, d, period time.Duration, pid *actor.PID, msg any) {
	r.put(system, onGrid(monoNow()+int64(d), period), pid, msg)
}

// next puts the tick a period after the last one, on the nearest point of the grid (a
// period need not be a whole number of grains). If that time has passed, the program
// having stalled for longer than a period, the tick is put on the next point from now:
// the ticks missed are skipped, not sent at once.
func (r *repeat) next(system *actor.ActorSystem, period time.Duration, pid *actor.PID, msg any) {
	g := int64(grain(period))
	due := r.due + int64(period) + g/2
	due -= due % g
	if now := monoNow(); due < now {
		due = onGrid(now, period)
	}
	r.put(system, due, pid, msg)
}

func (r *repeat) put(system *actor.ActorSystem, due int64, pid *actor.PID, msg any) {
	t := &tick{due: due, system: system, pid: pid, msg: msg}
	theClock.add(t)
	r.due, r.cancel = due, func() { theClock.remove(t) }
}

// stop cancels the tick on the clock, if there is one.
func (r *repeat) stop() {
	if r.cancel != nil {
		r.cancel()
	}
}

// onGrid is t rounded up to the grid of a task repeated every period.
func onGrid(t int64, period time.Duration) int64 {
	g := int64(grain(period))
	return t + (g-t%g)%g
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
	at    int64         // due time the timer is set for; 0 when it is not set
	step  time.Duration // the time between passes while ticks are due; 0 is paceStep
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
	c.armAt(due)
}

// armAt sets the timer for at (monoNow). c.mu is held.
func (c *clock) armAt(at int64) {
	c.at = at
	d := time.Duration(at - monoNow())
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.pass)
		return
	}
	c.timer.Reset(d)
}

// pass delivers the earliest due ticks, passMax or a pacePasses-th of them if that is
// more, on the timer's goroutine, and sets the timer for the next pass: a step away if
// more are due.
func (c *clock) pass() {
	var held [passMax]*tick
	due := held[:0]
	c.mu.Lock()
	now := monoNow()
	n := max(passMax, (c.ticks.countDue(now)+pacePasses-1)/pacePasses)
	for len(due) < n && len(c.ticks) > 0 && c.ticks[0].due <= now {
		due = append(due, heap.Pop(&c.ticks).(*tick))
	}
	c.at = 0
	if len(c.ticks) > 0 && c.ticks[0].due <= now {
		c.armAt(now + int64(cmp.Or(c.step, paceStep)))
	} else {
		c.arm()
	}
	c.mu.Unlock()
	for _, t := range due {
		t.system.Root.Send(t.pid, t.msg)
	}
}

// tickHeap is a container/heap of ticks, earliest first.
type tickHeap []*tick

// countDue is how many ticks are due at now; it looks at those and their children only.
func (h tickHeap) countDue(now int64) int {
	n := 0
	var next [64]int
	stack := append(next[:0], 0)
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i >= len(h) || h[i].due > now {
			continue
		}
		n++
		stack = append(stack, 2*i+1, 2*i+2)
	}
	return n
}

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
