package httpstatus

import (
	"strings"
	"sync"
	"time"

	"github.com/procsup/procsup/messages"
)

// Event is one recent event of the processes below the handler's root, as /events serves
// it. Seq increases by one with every event the handler keeps; a reader passes the last
// Seq it saw as since to get the ones after it.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Type is the event's kind: "state_changed", "exited", "restarting",
	// "restart_limit", "high_ping", "memory_warning", "memory_limit_exceeded",
	// "cpu_warning", "pool" (a pool's process created, started, ready, closed, recycled
	// or retired), "pool_backoff" or "rollout".
	Type  string `json:"type"`
	Actor string `json:"actor"` // the id of the actor it is about
	OSPid int    `json:"os_pid,omitempty"`
	Text  string `json:"text"` // the event as one line a person reads
	// Failure marks an ending that was not asked for and was not a clean exit, and a
	// strategy that gave up (restart_limit).
	Failure bool   `json:"failure,omitempty"`
	Reason  string `json:"reason,omitempty"` // why a process ended (exited)
	Error   string `json:"error,omitempty"`  // the detail of an ending or a restart
	To      string `json:"to,omitempty"`     // the state entered (state_changed)
	Stderr  string `json:"stderr,omitempty"` // the end of its stderr, where kept (exited)
}

// journal keeps the last events of the actors below one id, in a ring, and wakes the
// live feeds when one arrives.
type journal struct {
	root string // the root's id: events of it and below it are kept

	mu      sync.Mutex
	ring    []Event // capacity fixed; ring[next%cap] is the oldest once full
	next    uint64  // the Seq of the next event
	arrived chan struct{}
	closed  bool
	onEvent func(*Event, messages.Event) // the history's restart and ping counts
}

func newJournal(root string, capacity int) *journal {
	return &journal{root: root, ring: make([]Event, 0, capacity), next: 1, arrived: make(chan struct{})}
}

// under reports whether the actor id is the root or below it.
func (j *journal) under(id string) bool {
	return id == j.root || strings.HasPrefix(id, j.root+"/")
}

// record keeps ev if it is about an actor below the root and is an event the journal
// keeps (a child's messages and a pool's acquires and releases are traffic, not events).
// It is an EventStream subscriber: it does not block.
func (j *journal) record(v any) {
	ev, ok := v.(messages.Event)
	if !ok || ev.Actor() == nil || !j.under(ev.Actor().Id) {
		return
	}
	e := Event{Time: time.Now(), Actor: ev.Actor().Id, OSPid: ev.OSProcess(), Text: ev.String()}
	switch m := ev.(type) {
	case *messages.StateChanged:
		e.Type, e.To = "state_changed", m.To.String()
	case *messages.Exited:
		e.Type, e.Reason, e.Stderr = "exited", m.Reason.String(), m.Stderr
		e.Failure = !m.Reason.Requested() && m.Reason != messages.ReasonExited
		if m.Err != nil {
			e.Error = m.Err.Error()
		}
	case *messages.Restarting:
		e.Type = "restarting"
		if m.Cause != nil {
			e.Error = m.Cause.Error()
		}
	case *messages.RestartLimit:
		e.Type, e.Failure = "restart_limit", true
		if m.Cause != nil {
			e.Error = m.Cause.Error()
		}
	case *messages.HighPing:
		e.Type = "high_ping"
	case *messages.MemoryWarning:
		e.Type = "memory_warning"
	case *messages.MemoryLimitExceeded:
		e.Type = "memory_limit_exceeded"
	case *messages.CPUWarning:
		e.Type = "cpu_warning"
	case *messages.PoolEvent:
		if m.Kind == messages.PoolAcquired || m.Kind == messages.PoolReleased {
			return
		}
		e.Type = "pool"
	case *messages.PoolBackoff:
		e.Type = "pool_backoff"
		if m.Cause != nil {
			e.Error = m.Cause.Error()
		}
	case *messages.Rollout:
		e.Type = "rollout"
		if m.Err != nil {
			e.Error = m.Err.Error()
		}
	default:
		return // ChildMessage: the application's traffic
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	e.Seq = j.next
	j.next++
	if len(j.ring) < cap(j.ring) {
		j.ring = append(j.ring, e)
	} else {
		*j.at(e.Seq) = e
	}
	close(j.arrived)
	j.arrived = make(chan struct{})
	on := j.onEvent
	j.mu.Unlock()
	if on != nil {
		on(&e, ev)
	}
}

// since returns the kept events after seq (at most limit, the oldest first; limit 0: all)
// that keep says to, the Seq to ask from next, whether events after seq were lost (the
// ring moved past them), and a channel closed when the next event arrives.
func (j *journal) since(seq uint64, limit int, keep func(*Event) bool) (out []Event, next uint64, lost bool, arrived <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := uint64(len(j.ring))
	oldest := j.next - n // the Seq of the oldest kept
	if seq+1 < oldest {
		lost, seq = true, oldest-1
	}
	next = seq
	for s := max(seq+1, oldest); s < j.next; s++ {
		e := j.at(s)
		next = s
		if keep != nil && !keep(e) {
			continue
		}
		out = append(out, *e)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	if next < seq {
		next = seq
	}
	return out, next, lost, j.arrived
}

// last returns up to n of the newest events that keep says to, the newest first.
func (j *journal) last(n int, keep func(*Event) bool) []Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Event
	size := uint64(len(j.ring))
	for s := j.next - 1; s >= j.next-size && s > 0 && len(out) < n; s-- {
		e := j.at(s)
		if keep == nil || keep(e) {
			out = append(out, *e)
		}
	}
	return out
}

// latest is the Seq of the newest event kept (0: none yet).
func (j *journal) latest() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// at is where the event of seq is (or goes) in the ring: seq 1 at 0, and so on around.
func (j *journal) at(seq uint64) *Event { return &j.ring[(seq-1)%uint64(cap(j.ring))] }

// close stops keeping events.
func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
}
