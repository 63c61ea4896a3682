//go:build linux

package childproc

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procsup/procsup/messages/wire"
)

// DefaultLogBuffer is how many records a child holds for the parent before it drops new
// ones.
const DefaultLogBuffer = 1024

// Limits on one log record, so that no record can break the protocol: groups nested
// deeper than MaxLogGroupDepth are flattened into dotted keys ("a.b.c") at that depth;
// attributes beyond MaxLogAttrs (nested ones included) are left out and counted in a
// "procsup.attrs_dropped" attribute; a record larger than the parent accepts is sent
// with its strings cut short and "procsup.truncated" set.
const (
	MaxLogGroupDepth = 8
	MaxLogAttrs      = 256
)

// logSink ships records to the parent over the log socket. It never blocks the caller:
// records go into a bounded buffer, and when the parent does not read fast enough new
// records are dropped and counted. Every record it takes is numbered (LogRecord.Seq), so
// the parent counts the dropped ones from the gaps and from the total that Exiting
// carries, whatever happens to the records in between. Its methods are safe for
// concurrent use.
type logSink struct {
	w       *wire.Writer
	mu      sync.Mutex // numbers and queues a record in one step, so records go out in order
	closed  bool
	ch      chan *wire.LogRecord // made, and run started, by the first record
	seq     uint64               // records taken, under mu
	dropped atomic.Uint64        // since the last record sent
	done    chan struct{}
}

// newLogSink returns a sink writing to w that keeps up to [DefaultLogBuffer] records.
func newLogSink(w *wire.Writer) *logSink {
	return &logSink{w: w, done: make(chan struct{})}
}

// run writes the queued records until the sink is closed. A record over the
// receiver's frame cap is cut short and sent; only a broken socket stops the writing.
func (s *logSink) run() {
	defer close(s.done)
	broken := false
	for rec := range s.ch {
		if broken {
			continue
		}
		rec.Dropped = s.dropped.Swap(0)
		err := s.w.Write(rec)
		if errors.Is(err, wire.ErrFrameTooLarge) {
			err = s.w.Write(shrink(rec, s.w.Limit()))
			if errors.Is(err, wire.ErrFrameTooLarge) {
				err = s.w.Write(&wire.LogRecord{Time: rec.Time, Level: rec.Level, Seq: rec.Seq, Dropped: rec.Dropped,
					Message: cut(rec.Message, 64), Attrs: []wire.Attr{truncatedAttr}})
			}
		}
		if err != nil && !errors.Is(err, wire.ErrFrameTooLarge) {
			broken = true // the parent is gone; drain the buffer without writing
		}
	}
}

var truncatedAttr = wire.Attr{Key: "procsup.truncated", Kind: "bool", Value: true}

// shrink returns rec with every string cut so that the whole fits well within max bytes.
func shrink(rec *wire.LogRecord, max int) *wire.LogRecord {
	c := *rec
	n := 1
	countAttrs(rec.Attrs, &n)
	each := max / (4 * (n + 1))
	c.Message, c.Logger = cut(rec.Message, each), cut(rec.Logger, each)
	if c.Source != nil {
		src := *c.Source
		src.Function, src.File = cut(src.Function, each), cut(src.File, each)
		c.Source = &src
	}
	c.Attrs = append(cutAttrs(rec.Attrs, each), truncatedAttr)
	return &c
}

func countAttrs(as []wire.Attr, n *int) {
	for _, a := range as {
		*n++
		countAttrs(a.Group, n)
	}
}

func cutAttrs(as []wire.Attr, each int) []wire.Attr {
	out := make([]wire.Attr, len(as))
	for i, a := range as {
		a.Key = cut(a.Key, each)
		if v, ok := a.Value.(string); ok {
			a.Value = cut(v, each)
		}
		a.Group = cutAttrs(a.Group, each)
		out[i] = a
	}
	return out
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:max(n, 0)]
}

// queue numbers rec, applies the limits to its attributes and queues it for the parent,
// or counts it as dropped when the buffer is full or the sink is closed.
func (s *logSink) queue(rec *wire.LogRecord) {
	rec.Attrs = limitAttrs(rec.Attrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rec.Seq = s.seq
	if s.closed {
		s.dropped.Add(1)
		return
	}
	if s.ch == nil {
		// The first record: a child that never logs spends neither the buffer nor the
		// goroutine, and one that does spends them after its handshake.
		s.ch = make(chan *wire.LogRecord, DefaultLogBuffer)
		go s.run()
	}
	select {
	case s.ch <- rec:
	default:
		s.dropped.Add(1)
	}
}

// limitAttrs applies MaxLogGroupDepth and MaxLogAttrs to a record's attributes.
func limitAttrs(as []wire.Attr) []wire.Attr {
	budget := MaxLogAttrs
	out := limitLevel(as, 1, "", &budget)
	if budget < 0 {
		out = append(out, wire.Attr{Key: "procsup.attrs_dropped", Kind: "int", Value: int64(-budget)})
	}
	return out
}

// limitLevel keeps as, the attributes of a group nested depth-1 deep (1: the record's
// own), under the key prefix prefix, within budget (which goes negative by the number
// left out).
func limitLevel(as []wire.Attr, depth int, prefix string, budget *int) []wire.Attr {
	var out []wire.Attr
	for _, a := range as {
		if a.Kind == "group" && depth > MaxLogGroupDepth {
			out = append(out, limitLevel(a.Group, depth, prefix+a.Key+".", budget)...)
			continue
		}
		*budget--
		if *budget < 0 {
			if a.Kind == "group" {
				n := 0
				countAttrs(a.Group, &n)
				*budget -= n
			}
			continue
		}
		a.Key = prefix + a.Key
		if a.Kind == "group" {
			a.Group = limitLevel(a.Group, depth+1, "", budget)
		}
		out = append(out, a)
	}
	return out
}

// panicked logs a recovered panic of the handler's method where, with its stack.
func (s *logSink) panicked(where string, p *PanicError) {
	s.say(levelError, "procsup: panic in "+where, "panic", p.Value, "stack", p.Stack)
}

// The levels of the runtime's own records, in slog's numbering (slog.LevelWarn,
// slog.LevelError): the runtime does not import log/slog, whose package links fmt.
const (
	levelWarn  = 4
	levelError = 8
)

// say logs the runtime's own record: msg with string attributes given as key, value
// pairs.
func (s *logSink) say(level int, msg string, kv ...string) {
	rec := &wire.LogRecord{Time: time.Now().UnixNano(), Level: level, Message: msg}
	for i := 0; i+1 < len(kv); i += 2 {
		rec.Attrs = append(rec.Attrs, wire.Attr{Key: kv[i], Kind: "string", Value: kv[i+1]})
	}
	s.queue(rec)
}

// taken returns how many records the sink took in all, sent or dropped: the figure
// Exiting carries.
func (s *logSink) taken() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// close stops taking records and waits, up to timeout, until the buffered ones are
// written. Records logged after it are dropped (and counted). It reports whether all
// were written.
func (s *logSink) close(timeout time.Duration) bool {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.ch != nil {
			close(s.ch)
		} else {
			close(s.done) // nothing was ever logged
		}
	}
	s.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.done:
		return true
	case <-t.C:
		return false
	}
}
