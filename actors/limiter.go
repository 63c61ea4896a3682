package actors

import (
	"runtime"
	"sync"
)

// Limiter caps how many processes start and initialize at once: a burst of spawns then
// queues instead of loading every core with runtimes starting up. Process actors take a
// slot before they launch and give it back once initialized (or dead). Safe for
// concurrent use.
type Limiter struct {
	mu      sync.Mutex
	max     int
	busy    int
	waiting []*limiterWaiter
}

type limiterWaiter struct{ grant func() }

// NewLimiter returns a limiter of max concurrent initializations (at least 1).
func NewLimiter(n int) *Limiter {
	return &Limiter{max: max(n, 1)}
}

// DefaultLimiter is shared by every process actor whose Config has no InitLimiter:
// min(NumCPU, 4) initializations at once.
var DefaultLimiter = NewLimiter(defaultConcurrency)

// defaultConcurrency is how many starts may run at once by default, the limiter's and a
// pool's: min(NumCPU, 4).
var defaultConcurrency = min(runtime.NumCPU(), 4)

// acquire calls grant, at once or when a slot frees up, from another goroutine. The
// returned cancel withdraws a request not yet granted and reports whether it did; a
// granted slot must be given back with release.
func (l *Limiter) acquire(grant func()) (cancel func() bool) {
	l.mu.Lock()
	if l.busy < l.max {
		l.busy++
		l.mu.Unlock()
		grant()
		return func() bool { return false }
	}
	w := &limiterWaiter{grant: grant}
	l.waiting = append(l.waiting, w)
	l.mu.Unlock()
	return func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, x := range l.waiting {
			if x == w {
				l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
				return true
			}
		}
		return false
	}
}

// release gives a slot back, granting it to the next waiter if there is one.
func (l *Limiter) release() {
	l.mu.Lock()
	if len(l.waiting) == 0 {
		l.busy--
		l.mu.Unlock()
		return
	}
	w := l.waiting[0]
	l.waiting = l.waiting[1:]
	l.mu.Unlock()
	w.grant()
}

// InFlight returns how many slots are taken and how many requests wait.
func (l *Limiter) InFlight() (busy, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy, len(l.waiting)
}
