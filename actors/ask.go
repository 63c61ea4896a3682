package actors

// How a request reaches a child, and what bounds it: the whole path is in this file.
//
// While its process runs, a process actor publishes a request handle on its gate: the
// writer of the child's control socket and the table of pending requests. [Ask] and
// [Send] take that handle when it is there and no Ask or Send waits in the actor's
// mailbox (gate.queued), write the frame on the caller's goroutine, and wait on a reply
// slot of their own; the reader goroutine answers the pending table as replies come.
// In any other state (starting, initializing, closing, dead), or for an actor that is
// not a local process actor (a remote proxy, a tree), the request goes to the actor,
// which holds it, writes it or refuses it, and answers the call's sender.
//
// What bounds it: the caller's ctx bounds the wait for the writer's lock, the write
// (a frame the socket does not take at once is finished on a goroutine of its own while
// the caller waits within ctx) and the wait for the reply. A frame is never left half
// written: one begun when ctx ended is finished within WriteTimeout, and a child that
// does not read it within that time is killed as not reading (ErrChildNotReading).
// When the process ends, every pending request is answered with ErrProcessEnded and the
// end's reason; each request gets exactly one answer, whichever comes first.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/internal/reply"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// Ask sends a request of kind with body to the process actor pid and waits, within ctx,
// for the child's reply. Sent before the process runs, the request is held and sent when
// it does. Asks and Sends from one goroutine reach the child in the order they were made.
// Every Ask gets exactly one answer; its error is always one of these:
//
//   - a *messages.RemoteError: the child's handler returned an error (errors.As); one
//     whose reply was too large to send matches wire.ErrFrameTooLarge; one with Code
//     wire.CodeShuttingDown reached a child whose shutdown had begun;
//   - a *wire.FrameTooLargeError (wire.ErrFrameTooLarge): the request is larger
//     than the child accepts; nothing was sent;
//   - [ErrNotRunning]: the actor is stopped or closing, or its process ended before it
//     ran (then the reason is wrapped too: errors.Is(err, messages.ReasonInitFailed));
//   - [ErrProcessEnded]: the process ended before it replied (the reason wrapped);
//   - [ErrHeldFull]: too many messages wait for the process to run;
//   - [ErrChildNotReading]: the child did not read the request (it is killed for it);
//   - [ErrNoProtocol]: the process is a plain program;
//   - [ErrNotProcess]: pid is not a process actor (a tree, say);
//   - ctx.Err(), when ctx ends first.
//
// ctx bounds the call in every case. A request whose frame was begun when ctx ended is
// still written whole, within the actor's WriteTimeout; its reply is dropped.
func Ask(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, kind string, body []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h := handleOf(system, pid); h != nil {
		if body, err, ok := h.ask(ctx, kind, body); ok {
			return body, err
		}
	}
	res, err := call(ctx, system, pid, &messages.Ask{Kind: kind, Body: body})
	if err != nil {
		return nil, err
	}
	if r, ok := res.(*messages.Response); ok {
		return r.Body, r.Err
	}
	return nil, fmt.Errorf("%w: %s answered an Ask with %T", ErrNotProcess, pid.GetId(), res)
}

// Send sends a one-way message of kind with body to the process actor pid and returns,
// within ctx, once it is written to the child (or held, before the process runs). Its
// errors are those of [Ask] but the child's own.
func Send(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, kind string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h := handleOf(system, pid); h != nil {
		return h.send(ctx, &wire.Message{Kind: kind, Body: body})
	}
	res, err := call(ctx, system, pid, &messages.Send{Kind: kind, Body: body})
	if err != nil {
		return err
	}
	if r, ok := res.(*messages.Response); ok {
		return r.Err
	}
	return fmt.Errorf("%w: %s answered a Send with %T", ErrNotProcess, pid.GetId(), res)
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

// call sends msg to the actor pid and waits for its one answer within ctx. A stopped
// actor's dead letter is ErrNotRunning.
func call(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, msg any) (any, error) {
	res, err := reply.Request(ctx, system, pid, msg)
	if err != nil {
		return nil, err
	}
	if _, ok := res.(*actor.DeadLetterResponse); ok {
		return nil, fmt.Errorf("%w: %s has stopped", ErrNotRunning, pid.GetId())
	}
	return res, nil
}

// gate is what callers know of a local process actor: how many Asks and Sends wait in its
// mailbox, and its request handle while its process runs. It lives as long as the actor
// (restarts included).
type gate struct {
	queued atomic.Int64 // Asks and Sends posted to the mailbox, not yet handled
	handle atomic.Pointer[handle]
}

// gates are a system's gates by actor id: a registry process with no messages of its own,
// so that they live and go with the system.
type gates struct{ m sync.Map }

const gatesID = "procsup-gates"

func gatesOf(system *actor.ActorSystem) *gates {
	if p, ok := system.ProcessRegistry.GetLocal(gatesID); ok {
		if g, ok := p.(*gates); ok {
			return g
		}
	}
	system.ProcessRegistry.Add(&gates{}, gatesID)
	p, _ := system.ProcessRegistry.GetLocal(gatesID) // whichever Add came first
	return p.(*gates)
}

func (*gates) SendUserMessage(*actor.PID, any)   {}
func (*gates) SendSystemMessage(*actor.PID, any) {}
func (*gates) Stop(*actor.PID)                   {}

// gateOf returns the gate of the local process actor pid, or nil.
func gateOf(system *actor.ActorSystem, pid *actor.PID) *gate {
	if pid == nil || pid.Address != system.Address() {
		return nil
	}
	if g, ok := gatesOf(system).m.Load(pid.Id); ok {
		return g.(*gate)
	}
	return nil
}

// handleOf returns the request handle of pid when a request may take it: the process
// runs, and no earlier Ask or Send waits in the actor's mailbox (it would be overtaken).
func handleOf(system *actor.ActorSystem, pid *actor.PID) *handle {
	g := gateOf(system, pid)
	if g == nil || g.queued.Load() != 0 {
		return nil
	}
	return g.handle.Load()
}

// isRequest reports whether a mailbox message is an Ask or a Send, which gate.queued counts.
func isRequest(envelope any) bool {
	switch actor.UnwrapEnvelopeMessage(envelope).(type) {
	case *messages.Ask, *messages.Send:
		return true
	}
	return false
}

// handle is a running process's request handle: its control socket's writer and its
// pending requests. The process actor publishes it on entering running and withdraws it
// on leaving.
type handle struct {
	system  *actor.ActorSystem
	owner   *actor.PID
	ospid   int
	w       *wire.Writer
	pending *pending
	wake    *reply.Waker // lent to one waiting caller at a time
}

// ask writes a request and waits for its reply, within ctx. ok is false when the
// pending table is closed (the process is ending): the actor answers then.
func (h *handle) ask(ctx context.Context, kind string, body []byte) (_ []byte, _ error, ok bool) {
	slot := reply.NewSlot()
	var wake *reply.Waker
	if h.wake.Lend() {
		wake = h.wake
		defer wake.Return()
	}
	id, open := h.pending.add(replyTo{slot: slot, wake: wake})
	if !open {
		return nil, nil, false
	}
	err := h.w.WriteContext(ctx, &wire.Request{ID: id, Kind: kind, Body: body})
	if err != nil && (ctx.Err() != nil || !childGone(err)) && h.pending.forget(id) {
		return nil, h.writeFailed(ctx, err), true
	}
	var res any
	if wake != nil {
		res, err = wake.Wait(ctx, slot)
	} else {
		res, err = slot.Wait(ctx)
	}
	if err != nil {
		if h.pending.forget(id) {
			return nil, err, true
		}
		res, _ = slot.Wait(context.Background()) // answered as ctx ended: it is in the slot
	}
	r := res.(*messages.Response)
	return r.Body, r.Err, true
}

// send writes a one-way message within ctx.
func (h *handle) send(ctx context.Context, m *wire.Message) error {
	if err := h.w.WriteContext(ctx, m); err != nil {
		return h.writeFailed(ctx, err)
	}
	return nil
}

// writeFailed is what a caller learns of a write that failed: ctx's error, a frame over
// the child's cap as it is, a child that does not read as ErrChildNotReading (the actor
// kills it for that), anything else as ErrProcessEnded.
func (h *handle) writeFailed(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		h.notReading()
	}
	return sendError(err)
}

// notReading tells the actor its child did not read a frame within WriteTimeout.
func (h *handle) notReading() {
	h.system.Root.Send(h.owner, &childNotReading{about{h.ospid}})
}

// lateFailure is the writer's report of a frame finished after its caller left.
func (h *handle) lateFailure(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		h.notReading()
	}
}

// pending holds the requests a process has not answered yet. Callers and the process
// actor add to it; the reader answers from it as replies arrive; whatever is left when
// the process ends is failed with the end's reason.
type pending struct {
	system *actor.ActorSystem
	mu     sync.Mutex
	nextID uint64
	wait   map[uint64]replyTo
	closed bool
}

// replyTo is whoever waits for a reply: a caller's slot, or the sender of an Ask the
// actor wrote.
type replyTo struct {
	slot reply.Slot
	wake *reply.Waker // the caller waits on it, not on the slot's channel
	to   *actor.PID
}

func newPending(system *actor.ActorSystem) *pending {
	return &pending{system: system, wait: map[uint64]replyTo{}}
}

// add records w and returns the request ID to send, or false once closed.
func (p *pending) add(w replyTo) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, false
	}
	p.nextID++
	p.wait[p.nextID] = w
	return p.nextID, true
}

// forget drops id and reports whether it was still waiting: if not, it was answered.
func (p *pending) forget(id uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.wait[id]
	delete(p.wait, id)
	return ok
}

// answer answers the request r replies to; a reply nobody waits for is dropped.
func (p *pending) answer(r *wire.Reply) {
	p.mu.Lock()
	w, ok := p.wait[r.ID]
	delete(p.wait, r.ID)
	p.mu.Unlock()
	if !ok {
		return
	}
	resp := &messages.Response{Body: r.Body}
	if r.Error != "" {
		resp.Body, resp.Err = nil, &messages.RemoteError{Message: r.Error, Code: r.Code}
	}
	p.deliver(w, resp)
}

func (p *pending) deliver(w replyTo, resp *messages.Response) {
	if w.to != nil {
		p.system.Root.Send(w.to, resp)
		return
	}
	w.slot.Put(resp)
	if w.wake != nil {
		w.wake.Signal()
	}
}

// close fails every pending request with err and refuses new ones.
func (p *pending) close(err error) {
	p.mu.Lock()
	waiting := p.wait
	p.wait, p.closed = map[uint64]replyTo{}, true
	p.mu.Unlock()
	for _, w := range waiting {
		p.deliver(w, &messages.Response{Err: err})
	}
}
