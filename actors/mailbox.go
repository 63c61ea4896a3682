package actors

import (
	"sync/atomic"
	"time"

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
// writeTimeout, when not zero, lets a call (Ask, Status) run the mailbox on its own
// goroutine (see start).
func lateMailbox(late func(c actor.Context, envelope any), hold func(invoke func(msg any), sys any) bool, writeTimeout time.Duration) actor.MailboxProducer {
	return func() actor.Mailbox {
		return &lateBox{Mailbox: actor.Unbounded()(), late: late, hold: hold, writeTimeout: writeTimeout}
	}
}

type lateBox struct {
	actor.Mailbox
	late func(c actor.Context, envelope any)
	hold func(invoke func(msg any), sys any) bool

	// A call that finds the actor idle runs its mailbox itself, so that the request is
	// written without a goroutine of the mailbox's: starting one wakes an idle core's
	// thread (see wake.go). Everything else keeps protoactor's dispatcher.
	writeTimeout time.Duration
	calls        *calls // the system's, to find a call's answer by its sender
	dispatcher   actor.Dispatcher
	run          func()      // the mailbox's run, as protoactor's mailbox last scheduled it
	scheduled    atomic.Bool // run was scheduled and not started yet
	dispatched   func()      // runDispatched, made once
	// Set by each run as it begins, on its own goroutine: the message and the caller
	// of a call whose goroutine runs it, or nothing.
	inlineMsg any
	inlineFor *answer
}

func (m *lateBox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	c, ok := invoker.(actor.Context)
	if m.writeTimeout > 0 && ok {
		m.calls, m.dispatcher, m.dispatched = callsOf(c.ActorSystem()), dispatcher, m.runDispatched
		dispatcher = deferred{m, dispatcher.Throughput()}
	}
	m.Mailbox.RegisterHandlers(&lateInvoker{MessageInvoker: invoker, late: m.late, hold: m.hold, box: m}, dispatcher)
}

func (m *lateBox) PostUserMessage(msg any) {
	if m.calls == nil {
		m.Mailbox.PostUserMessage(msg)
		return
	}
	var c *answer
	if env, ok := msg.(*actor.MessageEnvelope); ok && m.Mailbox.UserMessageCount() == 0 {
		if c = m.calls.lookup(env.Sender); c != nil && !c.inlineWithin(m.writeTimeout) {
			c = nil
		}
	}
	m.Mailbox.PostUserMessage(msg)
	m.start(msg, c)
}

func (m *lateBox) PostSystemMessage(msg any) {
	m.Mailbox.PostSystemMessage(msg)
	if m.calls != nil {
		m.start(nil, nil)
	}
}

// start starts the run the last post scheduled, if no other post took it: on the
// goroutine of c, the caller that posted msg, when c is not nil (a call that found the
// mailbox empty, whose ctx allows it), on a goroutine of the dispatcher's otherwise.
// Whichever post takes it, the run drains the mailbox as protoactor's would.
//
// run is written by the post that scheduled it and read by the one that takes it
// (scheduled orders the two); the next schedule comes only after this run set the
// mailbox idle.
func (m *lateBox) start(msg any, c *answer) {
	if !m.scheduled.Swap(false) {
		return
	}
	if c == nil {
		m.dispatcher.Schedule(m.dispatched)
		return
	}
	m.inlineMsg, m.inlineFor = msg, c
	m.run()
}

// runDispatched is a run on a goroutine of the dispatcher's.
func (m *lateBox) runDispatched() {
	m.inlineMsg, m.inlineFor = nil, nil
	m.run()
}

// deferred is the dispatcher protoactor's mailbox sees: it keeps the run for start.
type deferred struct {
	m          *lateBox
	throughput int
}

func (d deferred) Schedule(run func()) {
	d.m.run = run
	d.m.scheduled.Store(true)
}

func (d deferred) Throughput() int { return d.throughput }

// lateInvoker is called by the mailbox, one message at a time.
type lateInvoker struct {
	actor.MessageInvoker
	late     func(c actor.Context, envelope any)
	hold     func(invoke func(msg any), sys any) bool
	stopping bool // a Stop came: from then on, check whether the actor has stopped
	box      *lateBox
}

func (i *lateInvoker) InvokeSystemMessage(m any) {
	switch m.(type) {
	case *actor.Stop, *actor.Restart:
		if i.hold != nil && i.hold(i.MessageInvoker.InvokeUserMessage, m) {
			return
		}
	}
	if _, ok := m.(*actor.Stop); ok {
		i.stopping = true
	}
	i.MessageInvoker.InvokeSystemMessage(m)
}

func (i *lateInvoker) InvokeUserMessage(envelope any) {
	if i.stopping {
		// The invoker is the actor's context; a stopped actor is out of the registry.
		if c, ok := i.MessageInvoker.(actor.Context); ok {
			if _, live := c.ActorSystem().ProcessRegistry.Get(c.Self()); !live {
				i.late(c, envelope)
				return
			}
		}
	}
	if c := i.box.inlineFor; c != nil && envelope == i.box.inlineMsg {
		c.inline = true // the caller's own message, on the caller's goroutine
		i.MessageInvoker.InvokeUserMessage(envelope)
		c.inline = false
		return
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
