package actors

import (
	"errors"
	"fmt"
	"os"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// hold keeps an Ask or Send that came before the process runs, to send when it does; up
// to MaxHeld of them.
func (p *process) hold(ctx actor.Context) {
	if len(p.held) >= p.cfg.MaxHeld {
		err := ErrHeldFull
		if p.cfg.MaxHeld == 0 {
			err = ErrNotRunning
		}
		respond(ctx.Sender(), p.system, err)
		return
	}
	p.held = append(p.held, held{msg: ctx.Message(), sender: ctx.Sender()})
}

// held is an Ask or Send waiting for the process to run.
type held struct {
	msg    any
	sender *actor.PID
}

// sendHeld sends what was held, in order, now that the process runs.
func (p *process) sendHeld() {
	for _, h := range p.held {
		switch m := h.msg.(type) {
		case *messages.Ask:
			p.ask(h.sender, m)
		case *messages.Send:
			p.sendApp(h.sender, m)
		}
	}
	p.held = nil
}

// failHeld answers what was held with err: the process will not run.
func (p *process) failHeld(err error) {
	for _, h := range p.held {
		respond(h.sender, p.system, err)
	}
	p.held = nil
}

// respond answers an Ask or a Send with a sender.
func respond(to *actor.PID, system *actor.ActorSystem, err error) {
	if to != nil {
		system.Root.Send(to, &messages.Response{Err: err})
	}
}

// ask sends a request to the child; the reader answers sender when the reply comes.
func (p *process) ask(sender *actor.PID, m *messages.Ask) {
	if sender == nil {
		p.log.Warn("an Ask without a sender: use actors.Ask, Request or RequestFuture", "kind", m.Kind)
		return
	}
	id, ok := p.pending.add(replyTo{to: sender})
	if !ok {
		respond(sender, p.system, ErrNotRunning)
		return
	}
	if err := p.send(&wire.Request{ID: id, Kind: m.Kind, Body: m.Body}); err != nil && !childGone(err) {
		if p.pending.forget(id) {
			respond(sender, p.system, sendError(err))
		}
	}
}

// childGone reports whether a write failed because the child's socket is broken: the
// child is gone, and the end, which answers every pending request with its reason, is
// on its way.
func childGone(err error) bool {
	return !errors.Is(err, wire.ErrFrameTooLarge) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// sendApp sends a one-way message to the child; a sender learns how it went.
func (p *process) sendApp(sender *actor.PID, m *messages.Send) {
	err := p.send(&wire.Message{Kind: m.Kind, Body: m.Body})
	if err != nil {
		err = sendError(err)
		p.log.Warn("failed to send a message to the child", "kind", m.Kind, "error", err)
	}
	respond(sender, p.system, err)
}

// sendError is what a sender learns of a failed write to the child: a frame over the
// child's cap as it is, a child that does not read as ErrChildNotReading, anything else
// (a broken pipe: the child is gone) as ErrProcessEnded.
func sendError(err error) error {
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrChildNotReading
	}
	return fmt.Errorf("%w: %v", ErrProcessEnded, err)
}

// send writes m to the child. A child that has not read its socket for the whole
// WriteTimeout is killed for it.
func (p *process) send(m wire.Wire) error {
	err := p.w.Write(m)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.killFor(messages.ReasonProtocolError, ErrChildNotReading)
	}
	return err
}

// publishHandle lets Ask and Send write to the running child from their callers'
// goroutines (ask.go).
func (p *process) publishHandle() {
	if p.gate != nil {
		p.gate.handle.Store(p.handle)
	}
}

// withdrawHandle sends Ask and Send to the actor again: the process no longer runs.
func (p *process) withdrawHandle() {
	if p.gate != nil {
		p.gate.handle.Store(nil)
	}
}
