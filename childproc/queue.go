//go:build linux

package childproc

import (
	"sync"
	"time"

	"github.com/procsup/procsup/messages/wire"
)

// messageQueue holds one-way messages for the message handler, bounded by the bytes of
// their bodies: put waits only while more than max bytes wait (one message is always
// taken, however large), so a slow handler never stops the read loop below that.
type messageQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*wire.Message
	bytes  int
	max    int
	closed bool
}

func newMessageQueue(max int) *messageQueue {
	q := &messageQueue{max: max}
	q.cond.L = &q.mu
	return q
}

// put adds m, waiting while the queue is over its bound; it drops m once closed.
func (q *messageQueue) put(m *wire.Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.bytes > q.max && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return
	}
	q.items = append(q.items, m)
	q.bytes += len(m.Body)
	q.cond.Broadcast()
}

// take returns the oldest message, waiting for one; false once closed.
func (q *messageQueue) take() (*wire.Message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	m := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	q.bytes -= len(m.Body)
	q.cond.Broadcast()
	return m, true
}

// close wakes every waiter; later puts are dropped and takes return false.
func (q *messageQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// inflight counts the handler calls under way, so that the end of Serve can wait for them
// (bounded) before it counts the log records for Exiting. Its cond's L is its mu.
type inflight struct {
	mu      sync.Mutex
	cond    sync.Cond
	n       int
	closing bool
}

// begin counts a call that starts; false once drain began: the call must not start.
func (f *inflight) begin() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.n++
	return true
}

// end counts a call that ended.
func (f *inflight) end() {
	f.mu.Lock()
	f.n--
	f.mu.Unlock()
	f.cond.Broadcast()
}

// drain refuses new calls and waits up to d for those under way to end.
func (f *inflight) drain(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	over := false
	t := time.AfterFunc(d, func() {
		f.mu.Lock()
		over = true
		f.mu.Unlock()
		f.cond.Broadcast()
	})
	defer t.Stop()
	for f.n > 0 && !over {
		f.cond.Wait()
	}
}
