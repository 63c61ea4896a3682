package actors

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// A caller of Ask that waits on a channel is woken by the reader goroutine, and on a
// machine with an idle core the runtime then wakes that core's thread as well: a cross-
// core wake-up, 20-40 µs on a VM, on every reply. A caller that waits in the netpoller
// instead, on an eventfd the reader writes, is picked up by the thread the reply woke,
// as a plain blocking read is. A process lends its wakeFd to one caller at a time, and
// only to a call that found no other recent call open (asks.add, calls.add): when
// other calls are in flight, a caller woken through the netpoller is queued behind
// every runnable goroutine, while the reader's send on a channel makes it the next to
// run on the reader's thread, and with no idle core there is no other core to wake.
// Every other caller waits on its channel.

// wakeFd is an eventfd in the netpoller: a caller waits on it for its reply.
type wakeFd struct {
	f    *os.File
	raw  syscall.RawConn
	busy atomic.Bool // lent to a caller

	// The borrower's: the channel its reply comes on, what the wait took from it, and
	// the raw read's callback (took, made once: a closure made at each wait would be
	// allocated with the variables it sets).
	ch    chan any
	res   any
	check func(uintptr) bool
}

// wakeOne is the eventfd counter's increment, in the machine's byte order.
var wakeOne = binary.NativeEndian.AppendUint64(nil, 1)

// longAgo is a read deadline in the past: it ends a wait at once.
var longAgo = time.Unix(1, 0)

func newWakeFd() (*wakeFd, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	f := os.NewFile(fd, "procsup-wake")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &wakeFd{f: f, raw: raw}
	w.check = w.took
	return w, nil
}

// signal wakes the caller waiting on w, if any. The counter is never read: each write
// is an edge the netpoller reports, and a waiter checks its channel, not the count. The
// write is a raw system call, unseen by the runtime, as wire's reads and writes on a
// socket are: it cannot wait (the eventfd is non-blocking), and a call the runtime sees
// would wake its sysmon thread.
func (w *wakeFd) signal() {
	w.raw.Control(func(fd uintptr) {
		syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&wakeOne[0])), uintptr(len(wakeOne)))
	})
}

// wait waits in the netpoller until ch holds the reply or ctx ends. ok is false when w
// could not be waited on (it was closed, say): the caller then waits on ch itself.
func (w *wakeFd) wait(ctx context.Context, ch chan any) (res any, err error, ok bool) {
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			w.f.SetReadDeadline(longAgo)
			close(fired)
		})
		defer func() {
			if !stop() { // the deadline was set: clear it for the next caller
				<-fired
				w.f.SetReadDeadline(time.Time{})
			}
		}()
	}
	w.ch = ch
	rerr := w.raw.Read(w.check)
	res, w.ch, w.res = w.res, nil, nil
	switch {
	case rerr == nil:
		return res, nil, true
	case errors.Is(rerr, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		select {
		case res = <-ch:
			return res, nil, true
		default:
			return nil, ctx.Err(), true
		}
	}
	return nil, nil, false
}

// took takes the borrower's reply, if it came; if not, the read waits for the next edge.
func (w *wakeFd) took(uintptr) bool {
	select {
	case w.res = <-w.ch:
		return true
	default:
		return false
	}
}

func (w *wakeFd) close() { w.f.Close() }
