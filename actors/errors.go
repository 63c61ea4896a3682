package actors

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/procsup/procsup/messages"
)

var (
	// ErrNotRunning answers an Ask to a process actor that is not running: stopped,
	// closing, or whose process ended before it ran.
	ErrNotRunning = errors.New("procsup/actors: process is not running")
	// ErrNoProtocol answers an Ask or Send to a plain program (Config.Plain), which does
	// not speak procsup's protocol.
	ErrNoProtocol = errors.New("procsup/actors: the program does not speak procsup's protocol")
	// ErrProcessEnded answers an Ask whose process ended before it replied.
	ErrProcessEnded = errors.New("procsup/actors: process ended before replying")
	// ErrHeldFull answers an Ask or Send to a process that is not running yet when
	// Config.MaxHeld messages already wait for it.
	ErrHeldFull = errors.New("procsup/actors: too many messages held for a process that is not running yet")
	// ErrNotProcess answers a process command (Ask, Send, GetStatus) sent to an actor
	// that is not a process actor, a Tree say.
	ErrNotProcess = errors.New("procsup/actors: not a process actor")
	// ErrChildNotReading is the protocol error of a child whose control socket stayed
	// full for the whole WriteTimeout.
	ErrChildNotReading = errors.New("procsup/actors: the child does not read its control socket")
)

// FailureError is the reason a process actor hands to its parent's supervisor strategy
// when its process ended without being asked to. errors.Is(err, messages.ReasonCrashed)
// and the like match its Reason.
type FailureError struct {
	Actor    string // the actor's id
	OSPid    int
	Reason   messages.Reason
	ExitCode int
	Signal   syscall.Signal // 0 unless a signal ended it
	Err      error          // detail, where there is one
}

// Error implements error.
func (e *FailureError) Error() string {
	s := fmt.Sprintf("procsup: process %s (pid %d) failed: %s", e.Actor, e.OSPid, e.Reason)
	if e.Signal != 0 {
		s += ", signal " + e.Signal.String()
	} else if e.OSPid != 0 {
		s += fmt.Sprintf(", exit code %d", e.ExitCode)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is e's Reason.
func (e *FailureError) Is(target error) bool {
	r, ok := target.(messages.Reason)
	return ok && r == e.Reason
}

// failureOf is the failure an end reported by ev is, for a supervisor strategy or a
// pool's backoff.
func failureOf(ev *messages.Exited) *FailureError {
	return &FailureError{Actor: ev.PID.GetId(), OSPid: ev.OSPid, Reason: ev.Reason, ExitCode: ev.ExitCode,
		Signal: ev.Signal, Err: ev.Err}
}

// FailedPid returns the OS pid of the process that failed (it names the process of a
// messages.Restarting or RestartLimit).
func (e *FailureError) FailedPid() int { return e.OSPid }

// Unwrap returns the detail.
func (e *FailureError) Unwrap() error { return e.Err }
