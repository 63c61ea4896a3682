package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// callsID is the registry name of a system's calls: every call's sender is a PID with
// this Id and a RequestId of the call's own.
const callsID = "procsup-calls"

// calls is the one registry process behind the senders of a system's calls (call). A
// call is a map entry, not a registry entry of its own: nothing is formatted, hashed by
// name or added to protoactor's registry per call, and a process actor finds the answer
// of a call it handles by the sender's RequestId (lookup). The answer of a sender that
// is no longer open is dropped, as a stopped future's would be.
type calls struct {
	system *actor.ActorSystem
	mu     sync.Mutex
	last   uint32
	open   map[uint32]*answer
}

// callsOf returns system's calls, registering them at the first call.
func callsOf(system *actor.ActorSystem) *calls {
	if p, ok := system.ProcessRegistry.GetLocal(callsID); ok {
		if c, ok := p.(*calls); ok {
			return c
		}
	}
	system.ProcessRegistry.Add(&calls{system: system, open: map[uint32]*answer{}}, callsID)
	p, _ := system.ProcessRegistry.GetLocal(callsID) // whichever Add came first
	return p.(*calls)
}

// add opens a call answered to a and returns its sender. a.lone is whether no other
// call of the system is open.
func (c *calls) add(a *answer) *actor.PID {
	c.mu.Lock()
	a.lone = len(c.open) == 0
	for {
		c.last++
		if _, taken := c.open[c.last]; !taken && c.last != 0 {
			break
		}
	}
	c.open[c.last] = a
	id := c.last
	c.mu.Unlock()
	return &actor.PID{Address: c.system.Address(), Id: callsID, RequestId: id}
}

// remove closes the call whose sender is pid.
func (c *calls) remove(pid *actor.PID) {
	c.mu.Lock()
	delete(c.open, pid.RequestId)
	c.mu.Unlock()
}

// lookup returns the answer of the open call whose sender is pid, or nil when pid is no
// open call's sender of these calls.
func (c *calls) lookup(pid *actor.PID) *answer {
	if c == nil || pid == nil || pid.Id != callsID || pid.Address != c.system.Address() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open[pid.RequestId]
}

func (c *calls) SendUserMessage(pid *actor.PID, m any) {
	if a := c.lookup(pid); a != nil {
		a.deliver(actor.UnwrapEnvelopeMessage(m))
	}
}

func (*calls) SendSystemMessage(*actor.PID, any) {}
func (*calls) Stop(*actor.PID)                   {}
