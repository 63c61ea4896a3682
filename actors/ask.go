package actors

import (
	"context"
	"fmt"

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
// A stopped actor's dead letter is ErrNotRunning. The sender is a process in the
// registry (no actor, no goroutine), removed on return, so an answer that comes after ctx
// ended is dropped and nothing lingers.
func call(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &answer{ch: make(chan any, 1)}
	self, _ := system.ProcessRegistry.Add(r, "procsup-call$"+system.ProcessRegistry.NextId())
	defer system.ProcessRegistry.Remove(self)
	system.Root.RequestWithCustomSender(pid, msg, self)
	select {
	case res := <-r.ch:
		if _, ok := res.(*actor.DeadLetterResponse); ok {
			return nil, fmt.Errorf("%w: %s has stopped", ErrNotRunning, pid.GetId())
		}
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answer is the sender of a call: it keeps the first message it gets.
type answer struct{ ch chan any }

func (a *answer) SendUserMessage(_ *actor.PID, m any) {
	select {
	case a.ch <- actor.UnwrapEnvelopeMessage(m):
	default:
	}
}

func (a *answer) SendSystemMessage(*actor.PID, any) {}
func (a *answer) Stop(*actor.PID)                   {}
