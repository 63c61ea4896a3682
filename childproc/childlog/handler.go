//go:build linux

// Package childlog is a child program's slog logger: its records go to the parent over
// the log socket, with levels, attributes, groups and source locations intact, and the
// parent logs them with the child's pid and actor.
//
//	log := childlog.New(p) // p: the *childproc.Peer a handler is given
//	log.Info("job done", "id", id, "took", d)
//
// Logging never blocks the child: records go into the runtime's bounded buffer, and when
// the parent does not read fast enough new ones are dropped and counted (see
// childproc.Peer.Log, which this package is built on). It is a package apart from
// childproc so that a child that does not log through slog links neither log/slog nor
// fmt: a smaller binary, fewer pages resident, a faster start.
package childlog

import (
	"context"
	"log/slog"
	"runtime"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/messages/wire/wireslog"
)

// New returns a logger whose records at every level go to the parent of p.
func New(p *childproc.Peer) *slog.Logger { return slog.New(NewHandler(p, nil)) }

// Handler is an slog.Handler whose records go to the parent of a child program. Its
// methods are safe for concurrent use.
type Handler struct {
	peer   *childproc.Peer
	level  slog.Leveler
	logger string
	attrs  []wire.Attr // attributes added outside any group
	groups []openGroup // groups opened with WithGroup, outermost first
}

type openGroup struct {
	name  string
	attrs []wire.Attr
}

// NewHandler returns a handler sending to the parent of p the records at or above level
// (all when level is nil).
func NewHandler(p *childproc.Peer, level slog.Leveler) *Handler {
	return &Handler{peer: p, level: level}
}

// Enabled reports whether level is at or above the handler's level.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return h.level == nil || level >= h.level.Level()
}

// Handle sends r to the parent. It never blocks and never fails: a record the runtime
// cannot buffer is dropped and counted.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
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
			leaf = append(leaf, wireslog.FromSlog(a))
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
	rec.Attrs = append(append([]wire.Attr(nil), h.attrs...), leaf...)
	h.peer.Log(rec)
	return nil
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := h.clone()
	conv := make([]wire.Attr, 0, len(attrs))
	for _, a := range attrs {
		conv = append(conv, wireslog.FromSlog(a))
	}
	if n := len(c.groups); n > 0 {
		c.groups[n-1].attrs = append(c.groups[n-1].attrs[:len(c.groups[n-1].attrs):len(c.groups[n-1].attrs)], conv...)
	} else {
		c.attrs = append(c.attrs[:len(c.attrs):len(c.attrs)], conv...)
	}
	return c
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := h.clone()
	c.groups = append(c.groups, openGroup{name: name})
	return c
}

// WithLogger returns a handler whose records carry the logger name (LogRecord.Logger).
func (h *Handler) WithLogger(name string) *Handler {
	c := h.clone()
	c.logger = name
	return c
}

func (h *Handler) clone() *Handler {
	c := *h
	c.groups = append([]openGroup(nil), h.groups...)
	return &c
}
