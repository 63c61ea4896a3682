package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// asks holds the Asks a process has not answered yet. The process actor adds to it; the
// reader answers from it directly, as replies arrive, without a hop through the process
// actor's mailbox; whatever is left when the process ends is failed.
type asks struct {
	system *actor.ActorSystem
	mu     sync.Mutex
	nextID uint64
	wait   map[uint64]*actor.PID
	closed bool
	wake   *wakeFd // made at the first lend, closed with asks
}

func newAsks(system *actor.ActorSystem) *asks {
	return &asks{system: system, wait: map[uint64]*actor.PID{}}
}

// lend lends the process's wakeFd to the caller c while c's goroutine runs the process
// actor (the request is written there), unless another caller holds it; the caller
// gives it back when its wait ends. Without an eventfd, c waits on its channel.
func (a *asks) lend(c *answer) {
	if c == nil || !c.inline {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if a.wake == nil {
		w, err := newWakeFd()
		if err != nil {
			return
		}
		a.wake = w
	}
	if a.wake.busy.CompareAndSwap(false, true) {
		c.wake = a.wake
	}
}

// add records sender and returns the request ID to send, or false once closed.
func (a *asks) add(sender *actor.PID) (uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return 0, false
	}
	a.nextID++
	a.wait[a.nextID] = sender
	return a.nextID, true
}

// forget drops id (its request could not be sent) and reports whether it was still
// waiting: if not, it was answered already (the process ended meanwhile).
func (a *asks) forget(id uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.wait[id]
	delete(a.wait, id)
	return ok
}

// answer sends the Response for r to whoever asked; a reply nobody waits for is dropped.
func (a *asks) answer(r *wire.Reply) {
	a.mu.Lock()
	to, ok := a.wait[r.ID]
	delete(a.wait, r.ID)
	a.mu.Unlock()
	if !ok {
		return
	}
	resp := &messages.Response{Body: r.Body}
	if r.Error != "" {
		resp.Body, resp.Err = nil, &messages.RemoteError{Message: r.Error, Code: r.Code}
	}
	a.system.Root.Send(to, resp)
}

// close fails every waiting Ask with err and refuses new ones. The wakeFd is closed
// after: a caller still waiting on it then finds its answer on its channel.
func (a *asks) close(err error) {
	a.mu.Lock()
	waiting := a.wait
	a.wait, a.closed = map[uint64]*actor.PID{}, true
	a.mu.Unlock()
	for _, to := range waiting {
		a.system.Root.Send(to, &messages.Response{Err: err})
	}
	a.release()
}

// release closes the wakeFd, if any, and refuses new Asks and lends: the process
// ended (close), or the actor stops or restarts, which it does only after its process
// ended.
func (a *asks) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.wake != nil {
		a.wake.close()
		a.wake = nil
	}
}
