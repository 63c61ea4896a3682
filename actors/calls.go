package actors

import (
	"sync"
	"time"

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
	now    func() int64 // monoNow (tests set their own)
	mu     sync.Mutex
	last   uint32
	open   map[uint32]*answer
	// young counts the open calls by the millisecond they opened in, for the last
	// four milliseconds: slot ms%4, tagged with its millisecond.
	young [4]openedIn
}

// openedIn is how many open calls opened in millisecond ms.
type openedIn struct {
	ms int64
	n  int
}

// count returns how many open calls opened in millisecond ms, as far as y still knows.
func (y openedIn) count(ms int64) int {
	if y.ms != ms {
		return 0
	}
	return y.n
}

// callsOf returns system's calls, registering them at the first call.
func callsOf(system *actor.ActorSystem) *calls {
	if p, ok := system.ProcessRegistry.GetLocal(callsID); ok {
		if c, ok := p.(*calls); ok {
			return c
		}
	}
	system.ProcessRegistry.Add(&calls{system: system, now: monoNow, open: map[uint32]*answer{}}, callsID)
	p, _ := system.ProcessRegistry.GetLocal(callsID) // whichever Add came first
	return p.(*calls)
}

// add opens a call answered to a and returns its sender. a.lone is whether no other
// call of the system opened in this millisecond or the one before is still open: calls
// in flight together say the machine is busy with them, while a call that has waited
// longer (on a slow handler, say) says nothing of it.
func (c *calls) add(a *answer) *actor.PID {
	c.mu.Lock()
	ms := c.now() / int64(time.Millisecond) // read under mu: the slots' milliseconds only grow
	a.opened = ms
	a.lone = c.young[ms&3].count(ms) == 0 && c.young[(ms-1)&3].count(ms-1) == 0
	y := &c.young[ms&3]
	if y.ms != ms {
		*y = openedIn{ms: ms}
	}
	y.n++
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
	if a, ok := c.open[pid.RequestId]; ok {
		if y := &c.young[a.opened&3]; y.ms == a.opened {
			y.n--
		}
		delete(c.open, pid.RequestId)
	}
	c.mu.Unlock()
}

// lookup returns the answer of the open call whose sender is pid, or nil when pid is no
// open call's sender of these calls.
func (c *calls) lookup(pid *actor.PID) *answer {
	if pid == nil || pid.Id != callsID || pid.Address != c.system.Address() {
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
