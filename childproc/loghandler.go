//go:build linux

package childproc

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procsup/procsup/messages/wire"
)

// DefaultLogBuffer is how many records a [LogHandler] holds for the parent before it
// drops new ones.
const DefaultLogBuffer = 1024

// Limits on one log record, so that no record can break the protocol: groups nested
// deeper than MaxLogGroupDepth are flattened into dotted keys ("a.b.c") at that depth;
// attributes beyond MaxLogAttrs (nested ones included) are left out and counted in a
// "procsup.attrs_dropped" attribute; a record larger than the parent accepts is sent
// with its strings cut short and "procsup.truncated" set (see [LogHandler.Truncated]).
const (
	MaxLogGroupDepth = 8
	MaxLogAttrs      = 256
)

// LogHandler is an slog.Handler that ships records to the parent over the log socket,
// with levels, attributes, groups and source locations intact. It never blocks the
// caller: records go into a bounded buffer, and when the parent does not read fast
// enough new records are dropped and counted. Every record it takes is numbered
// (LogRecord.Seq), so the parent counts the dropped ones from the gaps and from the total
// that Exiting carries, whatever happens to the records in between. Its methods are safe
// for concurrent use.
type LogHandler struct {
	sink   *logSink
	level  slog.Leveler
	logger string
	attrs  []wire.Attr // attributes added outside any group
	groups []openGroup // groups opened with WithGroup, outermost first
}

type openGroup struct {
	name  string
	attrs []wire.Attr
}

type logSink struct {
	w         *wire.Writer
	mu        sync.Mutex // numbers and queues a record in one step, so records go out in order
	closed    bool
	buffer    int
	ch        chan *wire.LogRecord // made, and run started, by the first record
	seq       uint64               // records taken, under mu
	taken     atomic.Uint64
	dropped   atomic.Uint64 // since the last record sent
	truncated atomic.Uint64
	done      chan struct{}
}

// NewLogHandler returns a handler writing to w that keeps up to buffer records
// ([DefaultLogBuffer] when buffer <= 0) and passes records at or above level (all when
// nil). Call [LogHandler.Close] to flush it.
func NewLogHandler(w *wire.Writer, buffer int, level slog.Leveler) *LogHandler {
	if buffer <= 0 {
		buffer = DefaultLogBuffer
	}
	if level == nil {
		level = slog.LevelDebug - 100
	}
	s := &logSink{w: w, buffer: buffer, done: make(chan struct{})}
	return &LogHandler{sink: s, level: level}
}

// run writes the queued records until the handler is closed. A record over the
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
			s.truncated.Add(1)
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

// Enabled reports whether level is at or above the handler's level.
func (h *LogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// Handle queues r for the parent, or counts it as dropped when the buffer is full or the
// handler is closed.
func (h *LogHandler) Handle(_ context.Context, r slog.Record) error {
	rec := &wire.LogRecord{
		Time:    r.Time.UnixNano(),
		Level:   int(r.Level),
		Message: r.Message,
		Logger:  h.logger,
	}
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		rec.Source = &wire.Source{Function: f.Function, File: f.File, Line: f.Line}
	}
	var leaf []wire.Attr
	r.Attrs(func(a slog.Attr) bool {
		if !a.Equal(slog.Attr{}) {
			leaf = append(leaf, wire.AttrFromSlog(a))
		}
		return true
	})
	for i := len(h.groups) - 1; i >= 0; i-- {
		g := h.groups[i]
		members := append(append([]wire.Attr(nil), g.attrs...), leaf...)
		if len(members) == 0 {
			leaf = nil // slog drops empty groups
			continue
		}
		leaf = []wire.Attr{{Key: g.name, Kind: "group", Group: members}}
	}
	rec.Attrs = limitAttrs(append(append([]wire.Attr(nil), h.attrs...), leaf...))

	s := h.sink
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.taken.Store(s.seq)
	rec.Seq = s.seq
	if s.closed {
		s.dropped.Add(1)
		return nil
	}
	if s.ch == nil {
		// The first record: a child that never logs spends neither the buffer nor the
		// goroutine, and one that does spends them after its handshake.
		s.ch = make(chan *wire.LogRecord, s.buffer)
		go s.run()
	}
	select {
	case s.ch <- rec:
	default:
		s.dropped.Add(1)
	}
	return nil
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
func (h *LogHandler) panicked(where string, p *PanicError) {
	slog.New(h).Error("procsup: panic in "+where, "panic", p.Value, "stack", p.Stack)
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := h.clone()
	conv := make([]wire.Attr, 0, len(attrs))
	for _, a := range attrs {
		conv = append(conv, wire.AttrFromSlog(a))
	}
	if n := len(c.groups); n > 0 {
		c.groups[n-1].attrs = append(c.groups[n-1].attrs[:len(c.groups[n-1].attrs):len(c.groups[n-1].attrs)], conv...)
	} else {
		c.attrs = append(c.attrs[:len(c.attrs):len(c.attrs)], conv...)
	}
	return c
}

// WithGroup returns a handler that nests later attributes under name.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := h.clone()
	c.groups = append(c.groups, openGroup{name: name})
	return c
}

// WithLogger returns a handler whose records carry the logger name.
func (h *LogHandler) WithLogger(name string) *LogHandler {
	c := h.clone()
	c.logger = name
	return c
}

func (h *LogHandler) clone() *LogHandler {
	c := *h
	c.groups = append([]openGroup(nil), h.groups...)
	return &c
}

// Dropped returns how many records were dropped and not yet reported to the parent.
func (h *LogHandler) Dropped() uint64 { return h.sink.dropped.Load() }

// Taken returns how many records the handler took in all, sent or dropped: the figure
// Exiting carries.
func (h *LogHandler) Taken() uint64 { return h.sink.taken.Load() }

// Truncated returns how many records were sent cut short because they were larger than
// the parent accepts.
func (h *LogHandler) Truncated() uint64 { return h.sink.truncated.Load() }

// Close stops taking records and waits, up to timeout, until the buffered ones are
// written. Records logged after Close are dropped (and counted). It reports whether all
// were written.
func (h *LogHandler) Close(timeout time.Duration) bool {
	h.sink.mu.Lock()
	if !h.sink.closed {
		h.sink.closed = true
		if h.sink.ch != nil {
			close(h.sink.ch)
		} else {
			close(h.sink.done) // nothing was ever logged
		}
	}
	h.sink.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-h.sink.done:
		return true
	case <-t.C:
		return false
	}
}
