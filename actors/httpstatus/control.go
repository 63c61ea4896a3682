package httpstatus

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
)

// controlTimeout bounds an action: a graceful close (the process's CloseTimeout) and, for
// a restart, the new process's start.
const controlTimeout = time.Minute

// Acted is the answer of a control endpoint: what was done to which actor, or why
// nothing was.
type Acted struct {
	Action string `json:"action"`
	Target string `json:"target,omitempty"` // the actor's id
	Done   string `json:"done,omitempty"`   // what happened, for a person
	OSPid  int    `json:"os_pid,omitempty"` // the new process's, after a restart
	Error  string `json:"error,omitempty"`
}

// target is an actor below the root, found by name, with what holds it.
type target struct {
	snap   *messages.Snapshot
	parent *messages.Snapshot // nil at the root
}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	log := s.o.Logger.With("action", action, "name", r.FormValue("name"), "from", r.RemoteAddr,
		"user", r.Header.Get("X-Procsup-User"), "user_agent", r.UserAgent())
	refuse := func(code int, msg string) {
		log.Warn("procsup: control action refused", "status", code, "why", msg)
		writeJSON(w, code, Acted{Action: action, Error: msg})
	}
	if s.o.ControlToken == "" {
		refuse(http.StatusForbidden, "control is off: the program did not set httpstatus.Options.ControlToken")
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="procsup"`)
		refuse(http.StatusUnauthorized, "no token: send Authorization: Bearer TOKEN")
		return
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.o.ControlToken)) != 1 {
		refuse(http.StatusForbidden, "wrong token")
		return
	}
	if action != "restart" && action != "stop" && action != "respawn" {
		refuse(http.StatusNotFound, fmt.Sprintf("no action %q: restart, stop or respawn", action))
		return
	}
	name := r.FormValue("name")
	if name == "" {
		refuse(http.StatusBadRequest, "no name: ?name=ID, or the last part of an id")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), controlTimeout)
	defer cancel()
	t, code, err := s.find(r, name)
	if err != nil {
		refuse(code, err.Error())
		return
	}
	log = log.With("target", t.snap.ID)
	log.Info("procsup: control action")
	acted, code := s.act(ctx, action, t)
	acted.Action, acted.Target = action, t.snap.ID
	if acted.Error != "" {
		log.Error("procsup: control action failed", "status", code, "error", acted.Error)
	} else {
		log.Info("procsup: control action done", "done", acted.Done, "os_pid", acted.OSPid)
	}
	writeJSON(w, code, acted)
}

// find looks name up below the root: an actor's id, or the last part of exactly one.
func (s *Server) find(r *http.Request, name string) (target, int, error) {
	snap := s.snapshot(r)
	var found []target
	var look func(n, parent *messages.Snapshot)
	look = func(n, parent *messages.Snapshot) {
		if n.ID == name || n.Name == name {
			found = append(found, target{n, parent})
		}
		for _, c := range n.Children {
			look(c, n)
		}
	}
	look(snap, nil)
	for _, f := range found {
		if f.snap.ID == name {
			return f, 0, nil
		}
	}
	switch len(found) {
	case 0:
		return target{}, http.StatusNotFound, fmt.Errorf("no actor %q below %s", name, snap.ID)
	case 1:
		return found[0], 0, nil
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.snap.ID
	}
	return target{}, http.StatusConflict, fmt.Errorf("%q names %d actors (%s): give the id", name, len(found), strings.Join(ids, ", "))
}

// act does the action to t and says what happened.
func (s *Server) act(ctx context.Context, action string, t target) (Acted, int) {
	pid := actor.NewPID(s.root.Address, t.snap.ID)
	parentKind := ""
	if t.parent != nil {
		parentKind = t.parent.Kind
	}
	switch {
	case action == "respawn" && t.snap.Kind == "tree":
		s.system.Root.Send(pid, &messages.Respawn{})
		return Acted{Done: "asked the tree to start its children that are not running"}, http.StatusOK
	case action == "respawn":
		return Acted{Error: fmt.Sprintf("%s is a %s: respawn takes a tree", t.snap.ID, t.snap.Kind)}, http.StatusConflict
	case t.snap.Kind != "process":
		return Acted{Error: fmt.Sprintf("%s is a %s: %s takes a process", t.snap.ID, t.snap.Kind, action)}, http.StatusConflict
	case parentKind == "pool":
		s.system.Root.Send(pid, &messages.Close{Reason: "operator: " + action})
		return Acted{Done: "closing it; its pool starts a replacement as its size needs"}, http.StatusAccepted
	case action == "stop":
		if err := actors.StopAndWait(ctx, s.system, pid); err != nil {
			return Acted{Error: err.Error()}, http.StatusGatewayTimeout
		}
		return Acted{Done: "closed and stopped; respawn its tree to start it again"}, http.StatusOK
	case parentKind != "tree":
		return Acted{Error: fmt.Sprintf("%s is not in a tree: nothing would start it again", t.snap.ID)}, http.StatusConflict
	}
	// A restart: its tree closes it and spawns it again; it is done when it runs.
	running := make(chan int, 1)
	sub := s.system.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.StateChanged); ok && e.PID.Id == t.snap.ID && e.To == messages.Running {
			select {
			case running <- e.OSPid:
			default:
			}
		}
	})
	defer s.system.EventStream.Unsubscribe(sub)
	s.system.Root.Send(actor.NewPID(s.root.Address, t.parent.ID), &messages.RestartChild{Name: t.snap.Name})
	select {
	case ospid := <-running:
		return Acted{Done: "closed and started again", OSPid: ospid}, http.StatusOK
	case <-ctx.Done():
		return Acted{Error: "asked its tree to restart it; it did not run again in time"}, http.StatusGatewayTimeout
	}
}
