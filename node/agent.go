package node

import (
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages/nodepb"
)

// Messages of the node's own actors (never sent to another node).
type (
	// tick: the agent's lease round.
	tick struct{}
	// ownerLost: membership lost the node at owner (remote address); fence its workers.
	ownerLost struct{ owner, node string }
	// hostRunning: a host's worker is running.
	hostRunning struct{ id string }
	// fence: a host is to kill its worker because its owner was lost.
	fence struct{ why string }
	// nodeLost: a proxy's node was lost.
	nodeLost struct{ node, how string }
	// announcement: a membership event to publish on the EventStream.
	announcement struct{ ev any }
)

// agent is a node's well-known actor: it starts a host per worker a proxy asks for, from
// the specs registered on the node, sends leases to the other nodes, and fences the
// workers of an owner it loses.
type agent struct {
	n       *Node
	self    *actor.PID
	hosts   map[string]*hostRef            // host id -> host
	owners  map[string]map[string]*hostRef // owner address -> host id -> host
	heard   map[string]time.Time           // owner address -> its last lease (or first worker)
	count   uint64
	stopped bool
	timer   *time.Timer
}

// hostRef is what the agent keeps of a host.
type hostRef struct {
	pid     *actor.PID
	owner   string
	running bool
}

func newAgent(n *Node) *agent {
	return &agent{n: n, hosts: map[string]*hostRef{}, owners: map[string]map[string]*hostRef{}, heard: map[string]time.Time{}}
}

// Receive implements actor.Actor.
func (a *agent) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
		a.schedule()
	case *actor.Stopping:
		a.stopped = true
		if a.timer != nil {
			a.timer.Stop()
		}
	case *nodepb.StartWorker:
		a.start(ctx, m)
	case *nodepb.Lease:
		a.lease(ctx, m.Owner)
	case *tick:
		a.round(ctx)
		a.schedule()
	case *ownerLost:
		a.fence(ctx, m.owner, "its node "+m.node+" was declared dead")
	case *announcement:
		a.n.system.EventStream.Publish(m.ev)
	case *hostRunning:
		if h := a.hosts[m.id]; h != nil {
			h.running = true
			a.publishLoad()
		}
	case *actor.Terminated:
		a.ended(m.Who)
	}
}

// schedule arms the next lease round.
func (a *agent) schedule() {
	if a.stopped {
		return
	}
	sys, self := a.n.system, a.self
	a.timer = time.AfterFunc(a.n.cfg.LeaseInterval, func() { sys.Root.Send(self, &tick{}) })
}

// start starts a host for a worker of the spec a proxy asked for, or says why not.
func (a *agent) start(ctx actor.Context, m *nodepb.StartWorker) {
	reply := &nodepb.Started{Generation: m.Generation}
	spec, ok := a.n.cfg.Specs[m.Spec]
	switch {
	case a.stopped:
		reply.Error = errorOut(fmt.Errorf("%w: node %s is closing", errClosed, a.n.cfg.Name))
	case !ok:
		reply.Error = errorOut(fmt.Errorf("%w: %q on node %s", ErrUnknownSpec, m.Spec, a.n.cfg.Name))
	case m.Owner == nil || m.Owner.Address == "":
		reply.Error = errorOut(fmt.Errorf("%w: StartWorker without an owner", ErrBadConfig))
	}
	if reply.Error != nil {
		a.n.log.Warn("start refused", "spec", m.Spec, "owner", m.Owner.GetAddress(), "err", reply.Error.Message)
		ctx.Respond(reply)
		return
	}
	a.count++
	name := fmt.Sprintf("host-%d-%s", a.count, strings.NewReplacer("/", "_", "$", "_").Replace(m.Name))
	owner := m.Owner
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &host{n: a.n, spec: spec, specName: m.Spec, owner: owner, agent: a.self}
	}), name)
	if err != nil {
		reply.Error = errorOut(err)
		ctx.Respond(reply)
		return
	}
	h := &hostRef{pid: pid, owner: owner.Address}
	a.hosts[pid.Id] = h
	if a.owners[h.owner] == nil {
		a.owners[h.owner] = map[string]*hostRef{}
		if _, ok := a.heard[h.owner]; !ok {
			a.heard[h.owner] = time.Now()
		}
	}
	a.owners[h.owner][pid.Id] = h
	l := a.publishLoad()
	reply.Host = pid
	reply.Load = &nodepb.Load{Workers: int64(l.Workers), Starting: int64(l.Starting), FreeMb: l.FreeMB, Seq: l.Seq}
	ctx.Respond(reply)
}

// lease records an owner's lease. One that comes after the timeout (this node was
// stopped, or the lease was held up) fences first: the owner may have replaced the
// workers meanwhile.
func (a *agent) lease(ctx actor.Context, owner string) {
	if last, ok := a.heard[owner]; ok && len(a.owners[owner]) > 0 && time.Since(last) > a.n.cfg.LeaseTimeout {
		a.fence(ctx, owner, fmt.Sprintf("its lease expired (last heard %v ago)", time.Since(last).Round(time.Millisecond)))
	}
	a.heard[owner] = time.Now()
}

// round sends this node's lease to every other live node that holds workers of its
// proxies, and fences the owners whose lease expired.
func (a *agent) round(ctx actor.Context) {
	lease := &nodepb.Lease{Owner: a.n.self.Remote}
	for _, addr := range a.n.holders() {
		ctx.Send(actor.NewPID(addr, AgentName), lease)
	}
	for owner, last := range a.heard {
		if len(a.owners[owner]) == 0 {
			delete(a.heard, owner)
			continue
		}
		if owner != a.n.self.Remote && time.Since(last) > a.n.cfg.LeaseTimeout {
			a.fence(ctx, owner, fmt.Sprintf("its lease expired (last heard %v ago)", time.Since(last).Round(time.Millisecond)))
		}
	}
}

// fence kills every worker held for owner.
func (a *agent) fence(ctx actor.Context, owner, why string) {
	hs := a.owners[owner]
	if len(hs) == 0 || owner == a.n.self.Remote {
		return
	}
	delete(a.owners, owner)
	delete(a.heard, owner)
	for _, h := range hs {
		h.owner = ""
		ctx.Send(h.pid, &fence{why: "owner " + owner + " lost: " + why})
	}
	a.n.log.Warn("fencing workers", "owner", owner, "workers", len(hs), "why", why)
	a.n.system.EventStream.Publish(&WorkersFenced{Agent: a.self, Owner: owner, Workers: len(hs), Why: why})
}

// ended forgets a host that stopped.
func (a *agent) ended(pid *actor.PID) {
	h := a.hosts[pid.Id]
	if h == nil {
		return
	}
	delete(a.hosts, pid.Id)
	if hs := a.owners[h.owner]; hs != nil {
		delete(hs, pid.Id)
		if len(hs) == 0 {
			delete(a.owners, h.owner)
		}
	}
	a.publishLoad()
}

// publishLoad counts the hosts and has the node publish them.
func (a *agent) publishLoad() Load {
	starting := 0
	for _, h := range a.hosts {
		if !h.running {
			starting++
		}
	}
	return a.n.setLoad(len(a.hosts), starting)
}
