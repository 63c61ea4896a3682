package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// protoactor drops, without a word, the user messages still in an actor's mailbox when
// the actor has stopped: an Ask among them would wait out its whole timeout. The process
// actor's mailbox answers them instead: an Ask or a Send with a sender gets a Response
// with ErrNotRunning, any other request a DeadLetterResponse (a future then fails at once
// with actor.ErrDeadLetter), exactly as if it had been sent after the stop.

// answeringMailbox is the process actor's mailbox: protoactor's unbounded one, with an
// invoker that answers what comes after the stop.
func answeringMailbox() actor.Mailbox {
	return &answering{Mailbox: actor.Unbounded()()}
}

type answering struct{ actor.Mailbox }

func (m *answering) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.Mailbox.RegisterHandlers(&answeringInvoker{MessageInvoker: invoker}, dispatcher)
}

// answeringInvoker is called by the mailbox, one message at a time.
type answeringInvoker struct {
	actor.MessageInvoker
	stopping bool // a Stop came: from then on, check whether the actor has stopped
}

func (i *answeringInvoker) InvokeSystemMessage(m any) {
	if _, ok := m.(*actor.Stop); ok {
		i.stopping = true
	}
	i.MessageInvoker.InvokeSystemMessage(m)
}

func (i *answeringInvoker) InvokeUserMessage(envelope any) {
	if i.stopping {
		// The invoker is the actor's context; a stopped actor is out of the registry.
		if c, ok := i.MessageInvoker.(actor.Context); ok {
			system := c.ActorSystem()
			if _, live := system.ProcessRegistry.Get(c.Self()); !live {
				answerStopped(system, c.Self(), envelope)
				return
			}
		}
	}
	i.MessageInvoker.InvokeUserMessage(envelope)
}

// answerStopped answers a message that reached a stopped process actor.
func answerStopped(system *actor.ActorSystem, self *actor.PID, envelope any) {
	_, msg, sender := actor.UnwrapEnvelope(envelope)
	if sender == nil {
		return
	}
	switch msg.(type) {
	case *messages.Ask, *messages.Send:
		system.Root.Send(sender, &messages.Response{Err: ErrNotRunning})
	default:
		system.Root.Send(sender, &actor.DeadLetterResponse{Target: self})
	}
}
