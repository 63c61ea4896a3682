package reply

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// A Waker lets one waiter at a time wait for its Slot in the netpoller, on an eventfd
// the answering goroutine writes, instead of on the Slot's channel. A goroutine woken
// through a channel is made runnable by the goroutine that answers, and the runtime
// then wakes another core's thread to run it; a goroutine woken through the netpoller
// is picked up by the answering goroutine's own thread once that one blocks, as a
// blocking read on a socket would be.
type Waker struct {
	mu     sync.Mutex // guards f's making and closing
	f      *os.File
	raw    syscall.RawConn
	closed bool
	lent   chan struct{} // holds a token while a waiter has it

	// The borrower's: the channel its answer comes on, what the wait took from it, and
	// the raw read's callback (made once).
	ch    chan any
	res   any
	check func(uintptr) bool
}

// NewWaker returns a Waker; its eventfd is made at the first lend.
func NewWaker() *Waker {
	w := &Waker{lent: make(chan struct{}, 1)}
	w.check = w.took
	return w
}

// Lend lends w to the caller, which must call [Waker.Return] after its wait; it reports
// false when another waiter has it or it cannot be had (closed, or no eventfd).
func (w *Waker) Lend() bool {
	select {
	case w.lent <- struct{}{}:
	default:
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil && !w.closed {
		w.open()
	}
	if w.f == nil {
		<-w.lent
		return false
	}
	return true
}

// Return gives w back after a wait.
func (w *Waker) Return() { <-w.lent }

// open makes the eventfd; w.mu is held.
func (w *Waker) open() {
	fd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return
	}
	f := os.NewFile(fd, "procsup-wake")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return
	}
	w.f, w.raw = f, raw
}

// wakeOne is the eventfd counter's increment, in the machine's byte order.
var wakeOne = binary.NativeEndian.AppendUint64(nil, 1)

// longAgo is a read deadline in the past: it ends a wait at once.
var longAgo = time.Unix(1, 0)

// Signal wakes the waiter, if any. The counter is never read: each write is an edge the
// netpoller reports, and a waiter checks its channel, not the count. The write is a raw
// system call, which cannot wait (the eventfd is non-blocking).
func (w *Waker) Signal() {
	w.mu.Lock()
	raw := w.raw
	w.mu.Unlock()
	if raw == nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&wakeOne[0])), uintptr(len(wakeOne)))
	})
}

// Wait waits in the netpoller, within ctx, until s holds the answer; the caller must
// have w lent. When w cannot be waited on (closed meanwhile), it waits on s's channel.
func (w *Waker) Wait(ctx context.Context, s Slot) (any, error) {
	w.mu.Lock()
	f, raw := w.f, w.raw
	w.mu.Unlock()
	if f == nil {
		return s.Wait(ctx)
	}
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			f.SetReadDeadline(longAgo)
			close(fired)
		})
		defer func() {
			if !stop() { // the deadline was set: clear it for the next waiter
				<-fired
				f.SetReadDeadline(time.Time{})
			}
		}()
	}
	w.ch = s.ch
	rerr := raw.Read(w.check)
	res := w.res
	w.ch, w.res = nil, nil
	switch {
	case rerr == nil:
		return res, nil
	case errors.Is(rerr, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		if v, ok := s.Take(); ok {
			return v, nil
		}
		return nil, ctx.Err()
	}
	return s.Wait(ctx) // closed under the waiter
}

// took takes the borrower's answer, if it came; if not, the read waits for the next edge.
func (w *Waker) took(uintptr) bool {
	select {
	case w.res = <-w.ch:
		return true
	default:
		return false
	}
}

// Close closes the eventfd: a waiter on it then waits on its channel. Lend fails after.
func (w *Waker) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f != nil {
		w.f.Close()
		w.f, w.raw = nil, nil
	}
}
