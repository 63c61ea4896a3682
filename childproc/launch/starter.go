//go:build linux

package launch

import (
	"runtime"
	"sync"
)

// The parent-death signal is tied to the thread that forked the child, not to the
// process: when that thread ends, the child gets the signal. The Go runtime ends a thread
// when a goroutine locked to it exits (golang/go#27505), and may otherwise retire idle
// threads. So every child is started from one goroutine that locks its OS thread and
// never returns: one thread for all children, for the life of the program.
var starter struct {
	once   sync.Once
	jobs   chan func()
	inline bool // see becomeStarter
}

// becomeStarter makes the calling goroutine the starter, locked to its thread for good:
// onStarterThread then runs its jobs at once, and must be called from this goroutine
// alone. The keeper's loop is such a goroutine: it spawns every worker itself.
func becomeStarter() {
	runtime.LockOSThread()
	starter.inline = true
}

// onStarterThread runs f on the starter thread and waits for it.
func onStarterThread(f func()) {
	if starter.inline {
		f()
		return
	}
	starter.once.Do(func() {
		starter.jobs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the program
			for job := range starter.jobs {
				job()
			}
		}()
	})
	done := make(chan struct{})
	starter.jobs <- func() {
		defer close(done)
		f()
	}
	<-done
}
