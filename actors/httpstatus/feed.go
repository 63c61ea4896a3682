package httpstatus

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// feedHeartbeat is how often a quiet live feed sends a comment, so that proxies and
// clients see the connection alive.
const feedHeartbeat = 15 * time.Second

// Events is the answer of GET /events.
type Events struct {
	Events []Event `json:"events"`
	// Next is the Seq to pass as since to get the events after these.
	Next uint64 `json:"next"`
	// Lost says that events after since were no longer kept (Options.Events).
	Lost bool `json:"lost,omitempty"`
}

// feedQuery reads since, actor and limit; a bad one is an error a person reads.
func (s *Server) feedQuery(r *http.Request) (since uint64, keep func(*Event) bool, limit int, err error) {
	if v := cmp.Or(r.FormValue("since"), r.Header.Get("Last-Event-ID")); v != "" {
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, nil, 0, fmt.Errorf("since: %q is not an event's seq", v)
		}
	}
	if v := r.FormValue("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return 0, nil, 0, fmt.Errorf("limit: %q is not a count", v)
		}
	}
	if id := r.FormValue("actor"); id != "" {
		keep = func(e *Event) bool { return e.Actor == id || strings.HasPrefix(e.Actor, id+"/") }
	}
	return since, keep, limit, nil
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	since, keep, limit, err := s.feedQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	evs, next, lost, _ := s.journal.since(since, limit, keep)
	if evs == nil {
		evs = []Event{}
	}
	writeJSON(w, http.StatusOK, Events{Events: evs, Next: next, Lost: lost})
}

// live serves the events as server-sent events: those after since first (none without
// since), then each as it is kept, until the client goes or the server closes.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	since, keep, _, err := s.feedQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "this connection cannot stream", http.StatusInternalServerError)
		return
	}
	if r.FormValue("since") == "" && r.Header.Get("Last-Event-ID") == "" {
		since = s.journal.latest() // from now
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": procsup events\n\n")
	flusher.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	beat := time.NewTicker(feedHeartbeat)
	defer beat.Stop()
	for {
		evs, next, lost, arrived := s.journal.since(since, 256, keep)
		if lost {
			fmt.Fprintf(w, "event: lost\ndata: {\"after\": %d}\n\n", since)
		}
		for i := range evs {
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: ", evs[i].Seq, evs[i].Type)
			enc.Encode(&evs[i]) // one line, and its newline
			fmt.Fprint(w, "\n")
		}
		since = next
		if len(evs) > 0 || lost {
			flusher.Flush()
			continue // more may be kept already
		}
		select {
		case <-arrived:
		case <-beat.C:
			fmt.Fprint(w, ": quiet\n\n")
			flusher.Flush()
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}
