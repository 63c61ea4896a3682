// Package httpstatus serves a supervision tree over HTTP, for the people and the
// orchestrators that run it: a health check, the tree's snapshot as JSON, its metrics in
// Prometheus text format, the recent events as JSON and as a live feed, a status page
// that puts the processes needing attention first, a page per process, and, when the
// program turns them on with a token, endpoints that restart, stop and respawn. Mount it
// on your own server and close it when done:
//
//	status := httpstatus.New(system, tree, httpstatus.Options{Metrics: metrics})
//	defer status.Close()
//	mux.Handle("/procsup/", http.StripPrefix("/procsup", status))
//
// The routes, relative to where it is mounted:
//
//	GET  /healthz        200 "ok", or 503 with one line a problem: a tree that gave up on
//	                     a child (its restart limit), a pool whose starts fail, an actor
//	                     that did not answer
//	GET  /status         the snapshot (messages.Snapshot) as JSON
//	GET  /metrics        Options.Metrics (404 without)
//	GET  /events         the recent events ([Event]) as JSON: {"events": [...], "next": N,
//	                     "lost": bool}; ?since=N gives those after N, ?actor=ID those of one
//	                     actor and below it, ?limit=N at most N
//	GET  /events/live    the same as server-sent events, each as it happens (curl -N
//	                     follows it); ?since=N or a Last-Event-ID header replays those
//	                     after N first
//	GET  /               the status page: a summary, the processes that need attention,
//	                     then every process; ?sort=COLUMN, ?state=, ?node= and ?q= sort and
//	                     filter it; HTML and CSS only
//	GET  /process/ID     one process: its status, command line, cgroup, last events, its
//	                     memory and CPU over the last hour, and its stderr's last words
//	POST /control/restart?name=NAME   close a process gracefully and start it again
//	POST /control/stop?name=NAME      close a process and leave it stopped
//	POST /control/respawn?name=TREE   start again the children a tree has not running
//
// The control endpoints answer 403 unless Options.ControlToken is set, 401 to a request
// without "Authorization: Bearer TOKEN", 403 to a wrong token, and log every action. NAME
// is an actor's id, or its last part when that is unique below the root.
//
// The command procsup (cmd/procsup) is a client of these routes.
package httpstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
)

// The defaults of Options.
const (
	DefaultEvents          = 4096
	DefaultHistoryInterval = time.Minute
	DefaultFoldAbove       = 50
)

// Options configure a Server. The zero value serves everything but metrics and control.
type Options struct {
	// Metrics serves /metrics (the handler Prometheus returns, say); nil answers 404.
	Metrics http.Handler
	// Timeout bounds each snapshot; 0 means actors.DefaultSnapshotTimeout.
	Timeout time.Duration
	// Refresh is how often the status page reloads itself; 0 means 5 s.
	Refresh time.Duration
	// Title heads the status page; "" means "procsup".
	Title string
	// Events is how many of the latest events the server keeps for /events and the
	// pages; 0 means DefaultEvents. A child's messages and a pool's acquires and releases
	// are traffic, not events: they are not kept.
	Events int
	// HistoryInterval is how often the server samples every process (one snapshot of the
	// root) for the charts of the last hour and the attention list's worst pings; 0
	// means DefaultHistoryInterval, a negative value keeps no history.
	HistoryInterval time.Duration
	// FoldAbove: on the page's tree view, a tree or pool of more processes than this, all
	// running and none restarted in the last ten minutes, shows as one line; 0 means
	// DefaultFoldAbove, a negative value never folds.
	FoldAbove int
	// ControlToken turns the control endpoints on: a request must carry it as a bearer
	// token. "" leaves them off.
	ControlToken string
	// Logger logs every control action, taken or refused, with who asked; nil means
	// slog.Default().
	Logger *slog.Logger
	// Members lists the nodes of a cluster for the page (node.Node's StatusMembers, say);
	// nil shows none.
	Members func() []Member
}

// Member is a node of a cluster, as the page shows it.
type Member struct {
	Name, Address string
	Schema        int       // its schema version
	Workers       int       // the workers it holds
	Starting      int       // of those, the ones not yet running
	FreeMB        uint64    // memory available on its machine
	Heard         time.Time // when it was last heard of
}

// Server serves one tree (or pool, or process actor) over HTTP: see the package's
// documentation for its routes. It keeps the recent events and a short history of every
// process from New until Close.
type Server struct {
	system  *actor.ActorSystem
	root    *actor.PID
	o       Options
	mux     *http.ServeMux
	journal *journal
	history *history // nil: none kept
	sub     *eventstream.Subscription
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// New returns the server of the tree (or pool, or process actor) at root. It subscribes
// to the system's EventStream and samples the tree every Options.HistoryInterval until
// Close.
func New(system *actor.ActorSystem, root *actor.PID, o Options) *Server {
	if o.Timeout <= 0 {
		o.Timeout = actors.DefaultSnapshotTimeout
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	if o.Title == "" {
		o.Title = "procsup"
	}
	if o.Events <= 0 {
		o.Events = DefaultEvents
	}
	if o.HistoryInterval == 0 {
		o.HistoryInterval = DefaultHistoryInterval
	}
	if o.FoldAbove == 0 {
		o.FoldAbove = DefaultFoldAbove
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{system: system, root: root, o: o, journal: newJournal(root.Id, o.Events), done: make(chan struct{})}
	if o.HistoryInterval > 0 {
		s.history = newHistory(o.HistoryInterval)
		s.journal.onEvent = s.history.event
		s.wg.Go(s.sampleEvery)
	}
	s.sub = system.EventStream.Subscribe(s.journal.record)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /events/live", s.live)
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /process/{id...}", s.processPage)
	mux.HandleFunc("POST /control/{action}", s.control)
	s.mux = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops keeping events and history and ends the live feeds. The routes still
// answer, from what was kept.
func (s *Server) Close() {
	s.once.Do(func() {
		s.system.EventStream.Unsubscribe(s.sub)
		s.journal.close()
		close(s.done)
		s.wg.Wait()
	})
}

// sampleEvery adds a snapshot to the history every HistoryInterval until Close.
func (s *Server) sampleEvery() {
	t := time.NewTicker(s.o.HistoryInterval)
	defer t.Stop()
	for {
		s.sampleNow()
		select {
		case <-t.C:
		case <-s.done:
			return
		}
	}
}

func (s *Server) sampleNow() {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	snap := actors.Snapshot(ctx, s.system, s.root)
	s.history.add(snap, time.Now())
}

func (s *Server) snapshot(r *http.Request) *messages.Snapshot {
	ctx, cancel := context.WithTimeout(r.Context(), s.o.Timeout)
	defer cancel()
	return actors.Snapshot(ctx, s.system, s.root)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	problems := s.snapshot(r).Problems()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(problems, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.snapshot(r))
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.o.Metrics == nil {
		http.Error(w, "no metrics: the handler was given none (httpstatus.Options.Metrics)", http.StatusNotFound)
		return
	}
	s.o.Metrics.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
