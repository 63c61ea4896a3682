package childproc

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procsup/procsup/messages"
)

// DefaultLogBuffer is how many records a [LogHandler] holds for the parent before it
// drops new ones.
const DefaultLogBuffer = 1024

// LogHandler is an slog.Handler that ships records to the parent over the log socket,
// with levels, attributes, groups and source locations intact. It never blocks the
// caller: records go into a bounded buffer, and when the parent does not read fast
// enough new records are dropped and counted; the count travels with the next record
// sent (LogRecord.Dropped). Its methods are safe for concurrent use.
type LogHandler struct {
	sink   *logSink
	level  slog.Leveler
	logger string
	attrs  []messages.Attr // attributes added outside any group
	groups []openGroup     // groups opened with WithGroup, outermost first
}

type openGroup struct {
	name  string
	attrs []messages.Attr
}

type logSink struct {
	mu      sync.RWMutex // held for reading to send; for writing to close
	closed  bool
	ch      chan *messages.LogRecord
	dropped atomic.Uint64
	done    chan struct{}
}

// NewLogHandler returns a handler writing to w that keeps up to buffer records
// ([DefaultLogBuffer] when buffer <= 0) and passes records at or above level (all when
// nil). Call [LogHandler.Close] to flush it.
func NewLogHandler(w *messages.Writer, buffer int, level slog.Leveler) *LogHandler {
	if buffer <= 0 {
		buffer = DefaultLogBuffer
	}
	if level == nil {
		level = slog.LevelDebug - 100
	}
	s := &logSink{ch: make(chan *messages.LogRecord, buffer), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		broken := false
		for rec := range s.ch {
			if broken {
				continue
			}
			rec.Dropped = s.dropped.Swap(0)
			if err := w.Write(rec); err != nil {
				broken = true // the parent is gone; drain the buffer without writing
			}
		}
	}()
	return &LogHandler{sink: s, level: level}
}

// Enabled reports whether level is at or above the handler's level.
func (h *LogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// Handle queues r for the parent, or counts it as dropped when the buffer is full or the
// handler is closed.
func (h *LogHandler) Handle(_ context.Context, r slog.Record) error {
	rec := &messages.LogRecord{
		Time:    r.Time.UnixNano(),
		Level:   int(r.Level),
		Message: r.Message,
		Logger:  h.logger,
	}
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		rec.Source = &messages.Source{Function: f.Function, File: f.File, Line: f.Line}
	}
	var leaf []messages.Attr
	r.Attrs(func(a slog.Attr) bool {
		if !a.Equal(slog.Attr{}) {
			leaf = append(leaf, messages.AttrFromSlog(a))
		}
		return true
	})
	for i := len(h.groups) - 1; i >= 0; i-- {
		g := h.groups[i]
		members := append(append([]messages.Attr(nil), g.attrs...), leaf...)
		if len(members) == 0 {
			leaf = nil // slog drops empty groups
			continue
		}
		leaf = []messages.Attr{{Key: g.name, Kind: "group", Group: members}}
	}
	rec.Attrs = append(append([]messages.Attr(nil), h.attrs...), leaf...)

	h.sink.mu.RLock()
	defer h.sink.mu.RUnlock()
	if h.sink.closed {
		h.sink.dropped.Add(1)
		return nil
	}
	select {
	case h.sink.ch <- rec:
	default:
		h.sink.dropped.Add(1)
	}
	return nil
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := h.clone()
	conv := make([]messages.Attr, 0, len(attrs))
	for _, a := range attrs {
		conv = append(conv, messages.AttrFromSlog(a))
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

// Close stops taking records and waits, up to timeout, until the buffered ones are
// written. Records logged after Close are dropped. It reports whether all were written.
func (h *LogHandler) Close(timeout time.Duration) bool {
	h.sink.mu.Lock()
	if !h.sink.closed {
		h.sink.closed = true
		close(h.sink.ch)
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
