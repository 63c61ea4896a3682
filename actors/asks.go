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
	calls  *calls
	mu     sync.Mutex
	nextID uint64
	wait   map[uint64]asker
	closed bool
	wake   *wakeFd // made at the first lend, closed with asks
}

// asker is whoever asked: the sender, and its answer when the sender is a call of this
// system's (call), which then gets the reply without a registry lookup.
type asker struct {
	to     *actor.PID
	answer *answer
}

func newAsks(system *actor.ActorSystem) *asks {
	return &asks{system: system, calls: callsOf(system), wait: map[uint64]asker{}}
}

// add records sender and returns the request ID to send, or false once closed. A call
// whose goroutine runs the process actor's handling (answer.inline: the request is
// written there) and that found no other recent call of the system open when it
// opened (answer.lone) borrows the process's wakeFd to wait on, unless another caller holds
// it; the caller gives it back when its wait ends. Every other caller waits on its
// channel: with other calls in flight the machine is busy, and a reply through the
// netpoller would queue the caller behind everything runnable once more, where the
// reader's hand-off over a channel runs it next (see wake.go).
func (a *asks) add(sender *actor.PID) (uint64, bool) {
	c := a.calls.lookup(sender)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return 0, false
	}
	if c != nil && c.inline && c.lone {
		a.lend(c)
	}
	a.nextID++
	a.wait[a.nextID] = asker{sender, c}
	return a.nextID, true
}

// lend lends the wakeFd to c, made at the first lend; a.mu is held.
func (a *asks) lend(c *answer) {
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
	a.send(to, resp)
}

// send sends resp to w: straight to its answer for a call of this system's.
func (a *asks) send(w asker, resp *messages.Response) {
	if w.answer != nil {
		w.answer.deliver(resp)
		return
	}
	a.system.Root.Send(w.to, resp)
}

// close fails every waiting Ask with err and refuses new ones. The wakeFd is closed
// after: a caller still waiting on it then finds its answer on its channel.
func (a *asks) close(err error) {
	a.mu.Lock()
	waiting := a.wait
	a.wait, a.closed = map[uint64]asker{}, true
	a.mu.Unlock()
	for _, w := range waiting {
		a.send(w, &messages.Response{Err: err})
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
