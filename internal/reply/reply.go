// Package reply is procsup's one way to await the answer to a request: a Slot holds the
// first answer and is waited on within a context; a Registry gives a request a sender PID
// of its own (an entry of one registry process, no actor and no goroutine), whose first
// answer goes to a function, most often a Slot's Put.
//
// actors.Ask, actors.Status, actors.Acquire, Snapshot and the node's hosts all await
// their answers through it.
package reply

import (
	"context"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// Slot holds the first answer put into it. The zero value is not usable: make one with
// [NewSlot].
type Slot struct{ ch chan any }

// NewSlot returns an empty slot.
func NewSlot() Slot { return Slot{ch: make(chan any, 1)} }

// Put keeps v if the slot is empty and reports whether it did.
func (s Slot) Put(v any) bool {
	select {
	case s.ch <- v:
		return true
	default:
		return false
	}
}

// Wait returns the answer, or ctx's error when ctx ends first.
func (s Slot) Wait(ctx context.Context) (any, error) {
	select {
	case v := <-s.ch:
		return v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Take returns the answer if one is in the slot.
func (s Slot) Take() (any, bool) {
	select {
	case v := <-s.ch:
		return v, true
	default:
		return nil, false
	}
}

// registryID is the process registry name of a system's Registry: every sender it opens
// is a PID with this Id and a RequestId of its own.
const registryID = "procsup-replies"

// Registry is the registry process behind the senders of a system's requests. A sender is
// a map entry, not a registry entry of its own. The answer to a sender that is closed is
// dropped, as a stopped future's would be.
type Registry struct {
	system *actor.ActorSystem
	mu     sync.Mutex
	last   uint32
	open   map[uint32]func(any)
}

// Of returns system's Registry, registering it at the first call.
func Of(system *actor.ActorSystem) *Registry {
	if p, ok := system.ProcessRegistry.GetLocal(registryID); ok {
		if r, ok := p.(*Registry); ok {
			return r
		}
	}
	system.ProcessRegistry.Add(&Registry{system: system, open: map[uint32]func(any){}}, registryID)
	p, _ := system.ProcessRegistry.GetLocal(registryID) // whichever Add came first
	return p.(*Registry)
}

// Open returns a new sender whose first answer is passed to to, on the goroutine that
// sends it; later answers, and answers after [Registry.Close], are dropped.
func (r *Registry) Open(to func(any)) *actor.PID {
	r.mu.Lock()
	for {
		r.last++
		if _, taken := r.open[r.last]; !taken && r.last != 0 {
			break
		}
	}
	r.open[r.last] = to
	id := r.last
	r.mu.Unlock()
	return &actor.PID{Address: r.system.Address(), Id: registryID, RequestId: id}
}

// Close closes sender; it reports whether sender was still open (no answer came).
func (r *Registry) Close(sender *actor.PID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.open[sender.RequestId]
	delete(r.open, sender.RequestId)
	return ok
}

// Len returns how many senders are open.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open)
}

// SendUserMessage implements actor.Process: the first answer to an open sender closes it
// and goes to its function.
func (r *Registry) SendUserMessage(pid *actor.PID, m any) {
	if pid == nil {
		return
	}
	r.mu.Lock()
	to, ok := r.open[pid.RequestId]
	delete(r.open, pid.RequestId)
	r.mu.Unlock()
	if ok {
		to(actor.UnwrapEnvelopeMessage(m))
	}
}

// SendSystemMessage implements actor.Process.
func (*Registry) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process.
func (*Registry) Stop(*actor.PID) {}

// Request sends msg to pid with a sender of its own and waits for the first answer within
// ctx. An answer that comes after ctx ended is dropped; nothing lingers.
func Request(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := Of(system)
	s := NewSlot()
	sender := r.Open(func(m any) { s.Put(m) })
	system.Root.RequestWithCustomSender(pid, msg, sender)
	res, err := s.Wait(ctx)
	if err != nil {
		r.Close(sender)
		if v, ok := s.Take(); ok { // answered as ctx ended: the answer wins
			return v, nil
		}
	}
	return res, err
}
