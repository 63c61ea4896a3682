// Package httpstatus serves a supervision tree over HTTP, for the people and the
// orchestrators that run it: a health check, the tree's snapshot as JSON, its metrics in
// Prometheus text format, and a status page that refreshes by itself. Mount the handler
// on your own server:
//
//	mux.Handle("/procsup/", http.StripPrefix("/procsup", httpstatus.Handler(system, tree, httpstatus.Options{Metrics: metrics})))
//
// The routes, relative to where it is mounted:
//
//	GET /healthz  200 "ok", or 503 with one line a problem: a tree that gave up on a child
//	              (its restart limit), a pool whose starts fail, an actor that did not answer
//	GET /status   the snapshot (messages.Snapshot) as JSON
//	GET /metrics  Options.Metrics (404 without)
//	GET /         the status page: every process of the tree with its state, restarts,
//	              memory, CPU and ping round trip, HTML and CSS only
package httpstatus

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
)

// Options configure a Handler. The zero value serves everything but metrics.
type Options struct {
	// Metrics serves /metrics (the handler Prometheus returns, say); nil answers 404.
	Metrics http.Handler
	// Timeout bounds each snapshot; 0 means actors.DefaultSnapshotTimeout.
	Timeout time.Duration
	// Refresh is how often the status page reloads itself; 0 means 2 s.
	Refresh time.Duration
	// Title heads the status page; "" means "procsup".
	Title string
}

// Handler returns the handler for the tree (or pool, or process actor) at root.
func Handler(system *actor.ActorSystem, root *actor.PID, o Options) http.Handler {
	if o.Timeout <= 0 {
		o.Timeout = actors.DefaultSnapshotTimeout
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Title == "" {
		o.Title = "procsup"
	}
	h := &handler{system: system, root: root, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("GET /status", h.status)
	mux.HandleFunc("GET /metrics", h.metrics)
	mux.HandleFunc("GET /{$}", h.page)
	return mux
}

type handler struct {
	system *actor.ActorSystem
	root   *actor.PID
	o      Options
}

func (h *handler) snapshot(r *http.Request) *messages.Snapshot {
	ctx, cancel := context.WithTimeout(r.Context(), h.o.Timeout)
	defer cancel()
	return actors.Snapshot(ctx, h.system, h.root)
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	problems := h.snapshot(r).Problems()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(problems, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(h.snapshot(r))
}

func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	if h.o.Metrics == nil {
		http.Error(w, "no metrics: the handler was given none (httpstatus.Options.Metrics)", http.StatusNotFound)
		return
	}
	h.o.Metrics.ServeHTTP(w, r)
}

//go:embed page.html
var files embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"mb":       func(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) },
	"ms":       func(s float64) string { return fmt.Sprintf("%.2f", s*1000) },
	"duration": func(s float64) string { return (time.Duration(s * float64(time.Second))).Round(time.Second).String() },
	"pct":      func(p float64) string { return fmt.Sprintf("%.1f", p) },
}).ParseFS(files, "page.html"))

// row is one line of the status page: a process, or a tree or pool heading its own.
type row struct {
	Depth   int
	Name    string
	ID      string
	Kind    string
	Process *messages.ProcessView
	Note    string
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	snap := h.snapshot(r)
	var rows []row
	var walk func(s *messages.Snapshot, depth int)
	walk = func(s *messages.Snapshot, depth int) {
		rw := row{Depth: depth, Name: s.Name, ID: s.ID, Kind: s.Kind, Process: s.Process, Note: s.Error}
		switch {
		case len(s.Failed) > 0:
			rw.Note = "gave up on " + strings.Join(s.Failed, ", ")
		case s.Pool != nil:
			rw.Note = fmt.Sprintf("idle %d, busy %d, starting %d, waiting %d", s.Pool.Idle, s.Pool.Busy, s.Pool.Starting, s.Pool.Waiting)
		}
		rows = append(rows, rw)
		for _, c := range s.Children {
			walk(c, depth+1)
		}
	}
	walk(snap, 0)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	page.Execute(w, map[string]any{
		"Title": h.o.Title, "Refresh": int(h.o.Refresh.Seconds() + 0.5), "Rows": rows,
		"Counts": snap.Counts, "Problems": snap.Problems(), "At": time.Now().Format(time.TimeOnly),
	})
}
