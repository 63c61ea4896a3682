package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// protoactor drops, without a word, the user messages still in an actor's mailbox when
// the actor has stopped: an Ask among them would wait out its whole timeout, an event
// on its way up a tree would be lost. The mailboxes here hand each such message to a
// function instead: the process actor's answers it (an Ask or a Send with a sender gets a
// Response with ErrNotRunning, any other request a DeadLetterResponse, so a future fails
// at once with actor.ErrDeadLetter, exactly as if it had been sent after the stop); a
// tree's passes an event on to its parent.

// lateMailbox returns a mailbox producer: protoactor's unbounded mailbox, whose messages
// that come after the actor stopped go to late, with the actor's (stopped) context.
//
// hold, when not nil, is asked first about every Stop and Restart protoactor sends the
// actor: it may hand the actor a message of its own through invoke (handled at once, on
// the mailbox's goroutine, as any message) and report that the actor takes the stop
// over, which then does not happen now: the actor sends itself a new one when it is ready.
//
// gated, for a process actor, gives the actor a gate (ask.go) under its id, which counts
// the Asks and Sends waiting in the mailbox.
func lateMailbox(late func(c actor.Context, envelope any), hold func(invoke func(msg any), sys any) bool, gated bool) actor.MailboxProducer {
	return func() actor.Mailbox {
		m := &lateBox{Mailbox: actor.Unbounded()(), late: late, hold: hold}
		if gated {
			m.gate = &gate{}
		}
		return m
	}
}

type lateBox struct {
	actor.Mailbox
	late func(c actor.Context, envelope any)
	hold func(invoke func(msg any), sys any) bool
	gate *gate // or nil
}

func (m *lateBox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	if c, ok := invoker.(actor.Context); ok && m.gate != nil {
		gatesOf(c.ActorSystem()).m.Store(c.Self().Id, m.gate)
	}
	m.Mailbox.RegisterHandlers(&lateInvoker{MessageInvoker: invoker, late: m.late, hold: m.hold, gate: m.gate}, dispatcher)
}

func (m *lateBox) PostUserMessage(msg any) {
	if m.gate != nil && isRequest(msg) {
		m.gate.queued.Add(1)
	}
	m.Mailbox.PostUserMessage(msg)
}

// lateInvoker is called by the mailbox, one message at a time.
type lateInvoker struct {
	actor.MessageInvoker
	late     func(c actor.Context, envelope any)
	hold     func(invoke func(msg any), sys any) bool
	gate     *gate
	stopping bool // a Stop came: no Restart after it; check whether the actor has stopped
}

func (i *lateInvoker) InvokeSystemMessage(m any) {
	switch m.(type) {
	case *actor.Stop:
		i.stopping = true
	case *actor.Restart:
		if i.stopping {
			// A supervisor's restart that comes after a Stop (a strategy restarts a failed
			// child after a delay; its parent may be stopping meanwhile) would revive the
			// actor: protoactor's restart does not look for a stop under way. The Stop wins.
			return
		}
	}
	switch m.(type) {
	case *actor.Stop, *actor.Restart:
		if i.hold != nil && i.hold(i.MessageInvoker.InvokeUserMessage, m) {
			return
		}
	}
	i.MessageInvoker.InvokeSystemMessage(m)
}

func (i *lateInvoker) InvokeUserMessage(envelope any) {
	if i.gate != nil && isRequest(envelope) {
		// Handled (written, held or refused) once this returns, panic or not.
		defer i.gate.queued.Add(-1)
	}
	if i.stopping {
		// The invoker is the actor's context; a stopped actor is out of the registry.
		if c, ok := i.MessageInvoker.(actor.Context); ok {
			if _, live := c.ActorSystem().ProcessRegistry.Get(c.Self()); !live {
				i.late(c, envelope)
				return
			}
		}
	}
	i.MessageInvoker.InvokeUserMessage(envelope)
}

// answerStopped answers a message that reached a stopped process actor.
func answerStopped(c actor.Context, envelope any) {
	_, msg, sender := actor.UnwrapEnvelope(envelope)
	if sender == nil {
		return
	}
	switch msg.(type) {
	case *messages.Ask, *messages.Send:
		c.ActorSystem().Root.Send(sender, &messages.Response{Err: ErrNotRunning})
	default:
		c.ActorSystem().Root.Send(sender, &actor.DeadLetterResponse{Target: c.Self()})
	}
}

// forwardStopped passes an event that reached a stopped tree on to the tree's parent;
// anything else is answered as by a stopped process actor.
func forwardStopped(c actor.Context, envelope any) {
	if ev, ok := actor.UnwrapEnvelopeMessage(envelope).(messages.Event); ok {
		if c.Parent() != nil {
			c.ActorSystem().Root.Send(c.Parent(), ev)
		}
		return
	}
	answerStopped(c, envelope)
}
