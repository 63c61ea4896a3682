package httpstatus

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
)

// eventsShown is how many of a process's last events its page shows.
const eventsShown = 30

// processView is what a process's page is made of.
type processView struct {
	Title, ID, Up string // Up leads back to the status page
	Error         string // why its status could not be had: gone, say
	Stderr        string // the end of its stderr: now, or at its last ending
	CPUShare      string // its share of a core, in percent, where measured
	Refresh       int
	Status        *messages.Status
	V             *messages.ProcessView
	Started       string
	Events        []Event
	Memory, CPU   template.HTML // the charts
	Samples       int
	Interval      time.Duration
}

func (s *Server) processPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.journal.under(id) {
		http.Error(w, fmt.Sprintf("no process %q below %s", id, s.root.Id), http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.Timeout)
	defer cancel()
	code := http.StatusOK
	st, err := actors.Status(ctx, s.system, actor.NewPID(s.root.Address, id))
	if err != nil {
		code = http.StatusBadGateway
		if errors.Is(err, actors.ErrNotProcess) || errors.Is(err, actors.ErrNotRunning) {
			code = http.StatusNotFound
		}
		st = &messages.Status{}
	}
	v := &processView{Title: s.o.Title, ID: id, Up: strings.Repeat("../", strings.Count(id, "/")+1),
		Refresh: int(s.o.Refresh.Seconds() + 0.5), Status: st, V: st.View(), Interval: s.o.HistoryInterval,
		Events: s.journal.last(eventsShown, func(e *Event) bool { return e.Actor == id || strings.HasPrefix(e.Actor, id+"/") })}
	if err != nil {
		v.Error = err.Error()
	}
	v.Stderr = st.Stderr
	if v.Stderr == "" { // its last process's, from its ending
		for _, e := range v.Events {
			if e.Type == "exited" && e.Actor == id && e.Stderr != "" {
				v.Stderr = e.Stderr
				break
			}
		}
	}
	if st.CPUSampled {
		v.CPUShare = fmt.Sprintf("%.1f", st.CPUPercent)
	}
	if !st.StartedAt.IsZero() {
		v.Started = st.StartedAt.Format(time.DateTime)
	}
	if s.history != nil {
		samples := s.history.samples(id)
		v.Samples = len(samples)
		if n := len(samples); v.CPUShare == "" && n > 0 && samples[n-1].CPU >= 0 {
			v.CPUShare = fmt.Sprintf("%.1f", samples[n-1].CPU)
		}
		v.Memory = memoryChart(samples, st.MemoryWarn, st.MemoryLimit)
		v.CPU = cpuChart(samples)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	processTmpl.Execute(w, v)
}
