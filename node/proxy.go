package node

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/nodepb"
	"github.com/procsup/procsup/messages/wire"
)

// exitGrace is how long a proxy whose host stopped waits for the Exited that should have
// come before; after it, the worker's end is unknown and reported as a lost node.
const exitGrace = 2 * time.Second

// NewProcess returns the props of a remote process: a proxy actor to spawn in this node's
// actor system, in your own tree, where you would spawn actors.NewProcess's. Its errors
// wrap ErrBadConfig.
//
// The proxy places its worker (ProcessConfig.Node, or the least loaded live node offering
// ProcessConfig.Spec), watches it, and answers Ask, Send, GetStatus, GetSnapshot, Close
// and Kill (actors.Ask, actors.Status, actors.Snapshot) as a process actor does, with the
// same errors. Its parent
// and the EventStream get the worker's events with the proxy's PID. An end it did not ask
// for is a failure for its parent's strategy (see [ProcessConfig.Restart]), the loss of
// the worker's node included (messages.ReasonNodeLost); a restart places the worker anew.
// Stopping the proxy closes its worker.
func (n *Node) NewProcess(cfg ProcessConfig) (*actor.Props, error) {
	if cfg.Spec == "" {
		return nil, fmt.Errorf("%w: ProcessConfig.Spec is empty", ErrBadConfig)
	}
	if cfg.StartTimeout < 0 || cfg.MaxHeld < 0 {
		return nil, fmt.Errorf("%w: negative StartTimeout or MaxHeld", ErrBadConfig)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.MaxHeld == 0 {
		cfg.MaxHeld = 1000
	}
	restarts := &atomic.Int64{} // across the proxy's instances, as its PID is
	gens := &atomic.Uint64{}
	return actor.PropsFromProducer(func() actor.Actor {
		p := &proxy{n: n, cfg: cfg, restarts: restarts, gens: gens, pending: map[uint64]*actor.PID{}}
		p.behavior = actor.NewBehavior()
		p.behavior.Become(p.placing)
		return p
	}), nil
}

// proxy is a remote process's actor on the node that owns it.
type proxy struct {
	n        *Node
	cfg      ProcessConfig
	self     *actor.PID
	parent   *actor.PID
	behavior actor.Behavior
	restarts *atomic.Int64
	gens     *atomic.Uint64 // placements of every instance: a late answer to an old one is known

	gen   uint64 // this placement
	node  string // where the worker is placed
	host  *actor.PID
	timer *time.Timer
	// check asks the host, every 2 LeaseIntervals, whether it still answers; heard is
	// when it last sent anything.
	check  *time.Timer
	heard  time.Time
	held   []held
	nextID uint64
	// pending are the senders of Asks, Sends and GetStatus sent to the host, by id.
	pending map[uint64]*actor.PID
	state   messages.State
	osPid   int
	since   time.Time       // when the worker's first state change came
	asked   messages.Reason // Close or Kill asked for
	exited  *messages.Exited
}

// held is a command that came while the worker was being placed.
type held struct {
	sender *actor.PID
	msg    any
}

// placeTimeout: the chosen node did not answer StartWorker in time.
type placeTimeout struct{ gen uint64 }

// exitTimeout: the host stopped and its Exited did not follow.
type exitTimeout struct{}

// hostCheck is the proxy's own timer: time to see whether its host still answers.
type hostCheck struct{ gen uint64 }

// Receive implements actor.Actor: lifecycle first, then the state's behavior.
func (p *proxy) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.self, p.parent = ctx.Self(), ctx.Parent()
		p.place(ctx)
		return
	case *actor.Restarting:
		p.restarts.Add(1)
		p.release(ctx, &nodepb.Kill{})
		return
	case *actor.Stopping:
		p.release(ctx, &nodepb.Close{Reason: "proxy stopping"})
		return
	case *actor.Stopped:
		return
	case *nodepb.Started:
		if m.Generation != p.gen || p.host != nil || p.exited != nil {
			p.stale(ctx, m)
			return
		}
	}
	p.behavior.Receive(ctx)
}

// place chooses a node and asks its agent for the worker.
func (p *proxy) place(ctx actor.Context) {
	p.gen = p.gens.Add(1)
	name, m, err := p.n.place(p.cfg.Spec, p.cfg.Node)
	if err != nil {
		p.end(ctx, &messages.Exited{PID: p.self, ExitCode: -1, Reason: messages.ReasonStartFailed, Err: err})
		return
	}
	p.node = name
	if !p.n.watch(name, p.self) {
		p.n.placed(name, nil)
		p.end(ctx, &messages.Exited{PID: p.self, ExitCode: -1, Reason: messages.ReasonNodeLost,
			Err: &NodeLostError{Node: name, How: "lost while placing"}})
		return
	}
	ctx.Request(actor.NewPID(m.Remote, AgentName), &nodepb.StartWorker{Spec: p.cfg.Spec, Name: p.self.Id, Owner: p.self, Generation: p.gen})
	sys, self, gen := p.n.system, p.self, p.gen
	p.timer = time.AfterFunc(p.cfg.StartTimeout, func() { sys.Root.Send(self, &placeTimeout{gen: gen}) })
}

// placing: waiting for the chosen node's agent. Commands are held.
func (p *proxy) placing(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *nodepb.Started:
		p.timer.Stop()
		var l *Load
		if m.Load != nil {
			l = &Load{Workers: int(m.Load.Workers), Starting: int(m.Load.Starting), FreeMB: m.Load.FreeMb, Seq: m.Load.Seq}
		}
		p.n.placed(p.node, l)
		if m.Error != nil || m.Host == nil {
			p.end(ctx, &messages.Exited{PID: p.self, ExitCode: -1, Reason: messages.ReasonStartFailed,
				Err: fmt.Errorf("node %s: %w", p.node, errorIn(m.Error))})
			return
		}
		p.host = m.Host
		ctx.Watch(p.host)
		p.heard = time.Now()
		p.armCheck()
		p.behavior.Become(p.running)
		for _, h := range p.held {
			p.forward(ctx, h.sender, h.msg)
		}
		p.held = nil
	case *placeTimeout:
		if m.gen != p.gen {
			return
		}
		p.n.placed(p.node, nil)
		p.end(ctx, &messages.Exited{PID: p.self, ExitCode: -1, Reason: messages.ReasonStartFailed,
			Err: fmt.Errorf("node %s did not take the worker within %v", p.node, p.cfg.StartTimeout)})
	case *nodeLost:
		p.timer.Stop()
		p.n.placed(p.node, nil)
		p.end(ctx, &messages.Exited{PID: p.self, ExitCode: -1, Reason: messages.ReasonNodeLost,
			Err: &NodeLostError{Node: m.node, How: m.how}})
	case *messages.GetStatus, *messages.GetSnapshot: // a remote process is a process in a snapshot
		ctx.Respond(p.status())
	case *messages.Close:
		p.endPlacing(ctx, messages.ReasonClosed)
	case *messages.Kill:
		p.endPlacing(ctx, messages.ReasonKilled)
	case *messages.Ask, *messages.Send:
		if len(p.held) >= p.cfg.MaxHeld {
			p.respond(ctx, ctx.Sender(), &messages.Response{Err: fmt.Errorf("%w (%d)", actors.ErrHeldFull, p.cfg.MaxHeld)})
			return
		}
		p.held = append(p.held, held{sender: ctx.Sender(), msg: m})
	}
}

// endPlacing ends a proxy asked to end before its worker was placed: a worker that its
// node starts after all is killed when its answer comes (stale) or when its host sees
// this proxy gone.
func (p *proxy) endPlacing(ctx actor.Context, r messages.Reason) {
	p.timer.Stop()
	p.asked = r
	p.end(ctx, &messages.Exited{PID: p.self, ExitCode: -1, Reason: r})
}

// running: the worker has a host; commands go to it, its events and answers come back.
// What a host of an earlier placement still sends (a node that came back) is ignored.
func (p *proxy) running(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *nodepb.Event, *nodepb.Reply, *nodepb.Status:
		if !ctx.Sender().Equal(p.host) {
			return
		}
		p.heard = time.Now()
	}
	switch m := ctx.Message().(type) {
	case *nodepb.Event:
		p.event(ctx, m)
	case *nodepb.Reply:
		if s, ok := p.pending[m.Id]; ok {
			delete(p.pending, m.Id)
			p.respond(ctx, s, &messages.Response{Body: m.Body, Err: errorIn(m.Error)})
		}
	case *nodepb.Status:
		if s, ok := p.pending[m.Id]; ok {
			delete(p.pending, m.Id)
			if m.Error != nil {
				p.respond(ctx, s, &messages.Response{Err: errorIn(m.Error)})
				return
			}
			st := statusIn(m)
			st.Restarts, st.Node = int(p.restarts.Load()), p.node
			p.respond(ctx, s, st)
		}
	case *actor.Terminated:
		if !m.Who.Equal(p.host) {
			return
		}
		if m.Why == actor.TerminatedReason_AddressTerminated {
			p.n.suspected(p.node)
			p.lost(ctx, "its connection ended")
			return
		}
		sys, self := p.n.system, p.self // the Exited may still be on its way
		p.timer = time.AfterFunc(exitGrace, func() { sys.Root.Send(self, &exitTimeout{}) })
	case *exitTimeout:
		p.lost(ctx, "its host stopped without reporting the worker's end")
	case *hostCheck:
		if m.gen != p.gen || p.exited != nil {
			return
		}
		// Messages between nodes can be lost when a connection is cut: an end or a
		// Terminated that never came must not leave the proxy waiting on a dead worker.
		if silence := time.Since(p.heard); silence > 2*p.n.cfg.LeaseTimeout {
			p.lost(ctx, fmt.Sprintf("its host did not answer for %v", silence.Round(time.Millisecond)))
			return
		}
		p.nextID++
		ctx.Send(p.host, &nodepb.GetStatus{Id: p.nextID}) // its answer only counts as heard
		p.armCheck()
	case *nodeLost:
		p.lost(ctx, m.how)
	case *messages.Close:
		p.asked = messages.ReasonClosed
		ctx.Send(p.host, &nodepb.Close{Reason: m.Reason})
	case *messages.Kill:
		p.asked = messages.ReasonKilled
		ctx.Send(p.host, &nodepb.Kill{})
	default:
		p.forward(ctx, ctx.Sender(), m)
	}
}

// forward sends a command to the host, with an id for its answer. A body larger than any
// message between nodes may carry fails its sender at once: nothing is sent.
func (p *proxy) forward(ctx actor.Context, sender *actor.PID, msg any) {
	if err := p.tooLarge(msg); err != nil {
		if sender != nil {
			ctx.Send(sender, &messages.Response{Err: err})
		}
		return
	}
	p.nextID++
	id := p.nextID
	switch m := msg.(type) {
	case *messages.Ask:
		ctx.Send(p.host, &nodepb.Ask{Id: id, Kind: m.Kind, Body: m.Body})
	case *messages.Send:
		ctx.Send(p.host, &nodepb.Ask{Id: id, Kind: m.Kind, Body: m.Body, OneWay: true})
	case *messages.GetStatus, *messages.GetSnapshot:
		ctx.Send(p.host, &nodepb.GetStatus{Id: id})
	default:
		return
	}
	if sender != nil {
		p.pending[id] = sender
	}
}

// event re-publishes a worker's event with this proxy's PID; an Exited ends the proxy.
func (p *proxy) event(ctx actor.Context, m *nodepb.Event) {
	ev := eventIn(p.self, m)
	if ev == nil {
		return
	}
	p.osPid = int(m.OsPid)
	if p.since.IsZero() {
		p.since = time.Now()
	}
	switch e := ev.(type) {
	case *messages.StateChanged:
		p.state = e.To
	case *messages.Exited:
		if e.Reason == messages.ReasonNodeLost {
			e.Err = &NodeLostError{Node: p.node, How: fmt.Sprint(e.Err)}
		}
		p.end(ctx, e)
		return
	}
	p.publish(ev)
}

// armCheck sets the timer of the next hostCheck.
func (p *proxy) armCheck() {
	sys, self, gen := p.n.system, p.self, p.gen
	p.check = time.AfterFunc(2*p.n.cfg.LeaseInterval, func() { sys.Root.Send(self, &hostCheck{gen: gen}) })
}

// lost ends a worker whose node was lost. The host is told to kill it anyway, for a node
// that comes back.
func (p *proxy) lost(ctx actor.Context, how string) {
	ctx.Send(p.host, &nodepb.Kill{})
	p.end(ctx, &messages.Exited{PID: p.self, OSPid: p.osPid, ExitCode: -1, Reason: messages.ReasonNodeLost,
		Err: &NodeLostError{Node: p.node, How: how}})
}

// end publishes the worker's end and hands it to the strategy (a failure) or stops.
func (p *proxy) end(ctx actor.Context, ev *messages.Exited) {
	if p.exited != nil {
		return
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.check != nil {
		p.check.Stop()
	}
	p.exited = ev
	if ev.Uptime == 0 && !p.since.IsZero() {
		ev.Uptime = time.Since(p.since)
	}
	if p.state != messages.Dead {
		from := p.state
		p.state = messages.Dead
		p.publish(&messages.StateChanged{PID: p.self, OSPid: ev.OSPid, From: from, To: messages.Dead})
	}
	p.publish(ev)
	p.behavior.Become(p.dead)
	p.failAll(ctx, fmt.Errorf("%w: %w", actors.ErrProcessEnded, ev.Reason))
	if p.node != "" {
		p.n.unwatch(p.node, p.self)
	}
	if p.asked != messages.ReasonNone || ev.Reason.Requested() || !p.failure(ev.Reason) {
		ctx.Stop(p.self)
		return
	}
	fe := &actors.FailureError{Actor: p.self.Id, OSPid: ev.OSPid, Reason: ev.Reason, ExitCode: ev.ExitCode, Signal: ev.Signal, Err: ev.Err}
	if s, ok := ctx.(interface{ EscalateFailure(reason, message any) }); ok {
		s.EscalateFailure(fe, nil)
		return
	}
	panic(fe)
}

// failure reports whether an end is a failure under the proxy's restart policy.
func (p *proxy) failure(r messages.Reason) bool {
	switch p.cfg.Restart {
	case actors.Temporary:
		return false
	case actors.Transient:
		return r != messages.ReasonExited
	}
	return true
}

// dead: the worker ended; the proxy is stopping or about to restart.
func (p *proxy) dead(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *messages.GetStatus, *messages.GetSnapshot: // a remote process is a process in a snapshot
		ctx.Respond(p.status())
	case *messages.Ask, *messages.Send:
		p.respond(ctx, ctx.Sender(), &messages.Response{Err: fmt.Errorf("%w: %s", actors.ErrNotRunning, p.exited.Reason)})
	}
}

// status is the proxy's own idea of the worker, when the host cannot be asked.
func (p *proxy) status() *messages.Status {
	s := &messages.Status{State: p.state, OSPid: p.osPid, Restarts: int(p.restarts.Load()), Node: p.node}
	if p.exited != nil {
		s.State, s.Reason, s.ExitCode, s.Signal, s.Killed, s.LastError = messages.Dead, p.exited.Reason, p.exited.ExitCode,
			p.exited.Signal, p.exited.Killed, p.exited.Err
	}
	return s
}

// release is the end of this proxy instance (stopping or restarting): the worker is told
// to end if it has not, and every waiting sender is answered.
func (p *proxy) release(ctx actor.Context, end any) {
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.check != nil {
		p.check.Stop()
	}
	if p.host != nil && p.exited == nil {
		ctx.Send(p.host, end)
	}
	if p.node != "" {
		p.n.unwatch(p.node, p.self)
	}
	p.failAll(ctx, fmt.Errorf("%w: the remote process's proxy is stopping", actors.ErrNotRunning))
}

// failAll answers every held and pending command with err.
func (p *proxy) failAll(ctx actor.Context, err error) {
	for _, h := range p.held {
		if _, ok := h.msg.(*messages.GetStatus); !ok {
			p.respond(ctx, h.sender, &messages.Response{Err: err})
		}
	}
	p.held = nil
	for id, s := range p.pending {
		delete(p.pending, id)
		p.respond(ctx, s, &messages.Response{Err: err})
	}
}

// stale kills the worker of an answer that came too late, or twice.
func (p *proxy) stale(ctx actor.Context, m *nodepb.Started) {
	if m.Host != nil && !m.Host.Equal(p.host) {
		ctx.Send(m.Host, &nodepb.Kill{})
	}
}

// respond answers sender, if there is one.
func (p *proxy) respond(ctx actor.Context, sender *actor.PID, msg any) {
	if sender != nil {
		ctx.Send(sender, msg)
	}
}

// publish sends an event to the parent and the EventStream.
func (p *proxy) publish(ev any) {
	if p.parent != nil {
		p.n.system.Root.Send(p.parent, ev)
	}
	p.n.system.EventStream.Publish(ev)
}

// tooLarge is the error of an Ask or Send whose body is over the largest a message
// between nodes carries, or nil.
func (p *proxy) tooLarge(msg any) error {
	var n int
	switch m := msg.(type) {
	case *messages.Ask:
		n = len(m.Kind) + len(m.Body)
	case *messages.Send:
		n = len(m.Kind) + len(m.Body)
	default:
		return nil
	}
	if n <= p.n.maxBody {
		return nil
	}
	return &wire.FrameTooLargeError{Size: uint64(n), Max: p.n.maxBody, Direction: "to the worker's node"}
}
