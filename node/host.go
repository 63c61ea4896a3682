package node

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/internal/reply"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/nodepb"
)

// host supervises one worker on its node for a proxy on another (or this) node: it spawns
// the process actor from the spec, carries the proxy's commands to it and its events
// back, and ends the worker when its owner is lost. It never restarts the worker: the
// proxy's strategy decides.
type host struct {
	n        *Node
	spec     actors.Config
	specName string
	owner    *actor.PID // the proxy
	agent    *actor.PID
	proc     *actor.PID
	closing  bool   // the owner asked for the end: its loss changes nothing
	fenced   string // why the worker was killed for its owner's loss
}

// workerGone: the process actor stopped and every event it sent before is forwarded.
type workerGone struct{}

// Receive implements actor.Actor.
func (h *host) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		h.start(ctx)
	case *nodepb.Ask:
		h.ask(ctx, m)
	case *nodepb.GetStatus:
		h.status(ctx, m)
	case *nodepb.Close:
		h.closing = true
		ctx.Send(h.proc, &messages.Close{Reason: m.Reason})
	case *nodepb.Kill:
		h.closing = true
		ctx.Send(h.proc, &messages.Kill{})
	case *fence:
		h.kill(ctx, m.why)
	case workerGone:
		ctx.Stop(ctx.Self())
	case *actor.Terminated:
		switch {
		case m.Who.Equal(h.proc):
			// Terminated is a system message: it overtakes the process actor's last
			// events (its Exited) still in this mailbox. Stop after them.
			ctx.Send(ctx.Self(), workerGone{})
		case m.Who.Equal(h.owner) && !h.closing:
			if m.Why == actor.TerminatedReason_AddressTerminated {
				h.kill(ctx, "the connection to its proxy's node ended")
				return
			}
			h.closing = true // the proxy stopped: its Close may come after this
			ctx.Send(h.proc, &messages.Close{Reason: "its proxy stopped"})
		}
	case messages.Event:
		h.event(ctx, m)
	}
}

// start spawns the worker's process actor. The spec's restart policy is set to
// Temporary: the host never restarts it, the proxy's strategy does.
func (h *host) start(ctx actor.Context) {
	cfg := h.spec
	cfg.Restart = actors.Temporary
	props, err := actors.NewProcess(cfg)
	if err != nil { // checked when the node started: not expected
		ctx.Request(h.owner, &nodepb.Event{Kind: &nodepb.Event_Exited{Exited: &nodepb.Exited{
			ExitCode: -1, Reason: int32(messages.ReasonStartFailed), Err: err.Error()}}})
		ctx.Stop(ctx.Self())
		return
	}
	h.proc = ctx.Spawn(props)
	ctx.Watch(h.owner)
}

// kill ends the worker because its owner was lost; the proxy, if it hears, sees the end
// as a lost node, not as a Kill it asked for.
func (h *host) kill(ctx actor.Context, why string) {
	if h.fenced != "" {
		return
	}
	h.fenced = why
	h.n.log.Warn("killing worker: owner lost", "host", ctx.Self().Id, "why", why)
	ctx.Send(h.proc, &messages.Kill{})
}

// ask carries an Ask or a Send to the process actor; its answer comes back as a Reply.
func (h *host) ask(ctx actor.Context, m *nodepb.Ask) {
	var msg any = &messages.Ask{Kind: m.Kind, Body: m.Body}
	if m.OneWay {
		msg = &messages.Send{Kind: m.Kind, Body: m.Body}
	}
	h.request(ctx, msg, func(answer any) any {
		reply := &nodepb.Reply{Id: m.Id}
		if r, ok := answer.(*messages.Response); ok {
			reply.Body, reply.Error = r.Body, errorOut(r.Err)
		} else {
			reply.Error = errorOut(notRunning(answer))
		}
		return reply
	})
}

// status carries a GetStatus to the process actor; its answer comes back as a Status.
func (h *host) status(ctx actor.Context, m *nodepb.GetStatus) {
	h.request(ctx, &messages.GetStatus{}, func(answer any) any {
		switch r := answer.(type) {
		case *messages.Status:
			return statusOut(m.Id, r)
		case *messages.Response:
			return &nodepb.Status{Id: m.Id, Error: errorOut(r.Err)}
		}
		return &nodepb.Status{Id: m.Id, Error: errorOut(notRunning(answer))}
	})
}

// request sends msg to the process actor, which answers every command once, with a
// sender of its own (package reply: no actor, no goroutine): the answer, turned into the
// proxy's message by out, goes on to the proxy as this host, without a second pass
// through the host's mailbox.
func (h *host) request(ctx actor.Context, msg any, out func(answer any) any) {
	sys, owner, self := h.n.system, h.owner, ctx.Self()
	sender := reply.Of(sys).Open(func(answer any) {
		sys.Root.RequestWithCustomSender(owner, out(answer), self)
	})
	ctx.RequestWithCustomSender(h.proc, msg, sender)
}

// event forwards the worker's event to the proxy. An end caused by the owner's loss is
// reported as a lost node.
func (h *host) event(ctx actor.Context, ev messages.Event) {
	if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
		ctx.Send(h.agent, &hostRunning{id: ctx.Self().Id})
	}
	out := eventOut(ev)
	if out == nil {
		return
	}
	if x := out.GetExited(); x != nil && h.fenced != "" {
		x.Reason, x.Err = int32(messages.ReasonNodeLost), "fenced: "+h.fenced
	}
	ctx.Request(h.owner, out) // the sender tells the proxy which host it is from
}
