package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// Ask sends a request of kind with body to the process actor pid and waits, within ctx,
// for the child's reply. Sent before the process runs, the request is held and sent when
// it does. Every Ask gets exactly one answer; its error is always one of these:
//
//   - a *messages.RemoteError: the child's handler returned an error (errors.As); one
//     whose reply was too large to send matches wire.ErrFrameTooLarge;
//   - a *wire.FrameTooLargeError (wire.ErrFrameTooLarge): the request is larger
//     than the child accepts; nothing was sent;
//   - [ErrNotRunning]: the actor is stopped or closing, or its process ended before it
//     ran (then the reason is wrapped too: errors.Is(err, messages.ReasonInitFailed));
//   - [ErrProcessEnded]: the process ended before it replied (the reason wrapped);
//   - [ErrHeldFull]: too many messages wait for the process to run;
//   - [ErrChildNotReading]: the child did not read the request (it is killed for it);
//   - [ErrNotProcess]: pid is not a process actor (a tree, say);
//   - ctx.Err(), when ctx ends first.
//
// When the actor has nothing else to do, Ask writes the request on the calling goroutine
// and, when no other call of the system is in flight (none opened in the last
// millisecond or two: a call waiting longer on a slow handler does not count), waits
// for the reply in the netpoller, as a blocking read would: no goroutine hand-off on
// the way out or back (with other calls in flight, the reader hands the reply over on a
// channel, which runs the caller next). It writes on the calling goroutine only when
// ctx has no deadline sooner than the actor's WriteTimeout (or none at all), since a
// child that does not read can hold that write for the whole WriteTimeout (a ctx
// cancelled meanwhile ends the call when the write ends); otherwise the actor's
// goroutine writes. The actor's handling then runs on the calling goroutine, so, as
// protoactor asks anyway, an EventStream subscriber must not block. The sender the
// actor sees is a PID of the system's registry process "procsup-calls", with a
// RequestId of the call's own.
func Ask(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, kind string, body []byte) ([]byte, error) {
	res, err := call(ctx, system, pid, &messages.Ask{Kind: kind, Body: body})
	if err != nil {
		return nil, err
	}
	switch r := res.(type) {
	case *messages.Response:
		return r.Body, r.Err
	}
	return nil, fmt.Errorf("%w: %s answered an Ask with %T", ErrNotProcess, pid.GetId(), res)
}

// Status asks the process actor pid for its status, within ctx. Its errors are
// [ErrNotRunning] for a stopped actor, [ErrNotProcess] and ctx.Err().
func Status(ctx context.Context, system *actor.ActorSystem, pid *actor.PID) (*messages.Status, error) {
	res, err := call(ctx, system, pid, &messages.GetStatus{})
	if err != nil {
		return nil, err
	}
	switch r := res.(type) {
	case *messages.Status:
		return r, nil
	case *messages.Response:
		return nil, r.Err
	}
	return nil, fmt.Errorf("%w: %s answered GetStatus with %T", ErrNotProcess, pid.GetId(), res)
}

// call sends msg to pid with a sender of its own and waits for the one answer, or ctx.
// A stopped actor's dead letter is ErrNotRunning. The sender is an entry of the system's
// calls (no actor, no goroutine), removed on return, so an answer that comes after ctx
// ended is dropped and nothing lingers. When the process actor is idle, this goroutine
// may run its handling of msg (see lateBox.start).
func call(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cs := callsOf(system)
	r := &answer{ch: make(chan any, 1), ctx: ctx}
	self := cs.add(r)
	defer cs.remove(self)
	system.Root.RequestWithCustomSender(pid, msg, self)
	res, err := r.wait()
	if err != nil {
		return nil, err
	}
	if _, ok := res.(*actor.DeadLetterResponse); ok {
		return nil, fmt.Errorf("%w: %s has stopped", ErrNotRunning, pid.GetId())
	}
	return res, nil
}

// answer is the sender of a call: it keeps the first message it gets.
type answer struct {
	ch  chan any
	ctx context.Context
	// inline: the process actor handles the call's message on the caller's goroutine
	// now (set and read in the mailbox's run: lateInvoker). opened: the millisecond
	// the call opened in; lone: no other call of the system opened shortly before was
	// open then (both set by calls.add). wake: the process's wakeFd, lent then
	// (asks.lend), so set on the caller's goroutine; the reader reads it after asks'
	// lock.
	inline bool
	lone   bool
	opened int64
	wake   *wakeFd
}

// inlineWithin reports whether the caller may run the process actor's handling of its
// message, which can write to the child for up to writeTimeout: only when its ctx
// cannot end sooner by a deadline (a child that does not read would otherwise hold the
// call past it).
func (a *answer) inlineWithin(writeTimeout time.Duration) bool {
	if a.ctx.Done() == nil {
		return true
	}
	d, ok := a.ctx.Deadline()
	return ok && writeTimeout > 0 && time.Until(d) > writeTimeout
}

// wait returns the answer, or ctx's error when ctx ends first.
func (a *answer) wait() (any, error) {
	if w := a.wake; w != nil {
		res, err, ok := w.wait(a.ctx, a.ch)
		w.busy.Store(false)
		if ok {
			return res, err
		}
	}
	select {
	case res := <-a.ch:
		return res, nil
	case <-a.ctx.Done():
		return nil, a.ctx.Err()
	}
}

// deliver keeps m if it is the first message of the call, and wakes the caller.
func (a *answer) deliver(m any) {
	select {
	case a.ch <- m:
		if a.wake != nil {
			a.wake.signal()
		}
	default:
	}
}
