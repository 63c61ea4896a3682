//go:build linux

package childproc

import (
	"errors"
	"fmt"
)

var (
	// ErrNotChild is returned by [Serve] in a process that procsup did not launch (its
	// environment lacks [EnvFDs]).
	ErrNotChild = errors.New("procsup/childproc: not started by procsup (no " + EnvFDs + " in the environment)")
	// ErrParentGone is returned by [Serve] when the control socket reached end of stream:
	// the parent closed it or died.
	ErrParentGone = errors.New("procsup/childproc: parent closed the control socket")
	// ErrParentSilent is returned by [Serve] when no message came from the parent for the
	// ping timeout plus [DefaultSilenceGrace].
	ErrParentSilent = errors.New("procsup/childproc: no message from the parent within the ping timeout")
	// ErrProtocol is matched by a [*ProtocolError].
	ErrProtocol = errors.New("procsup/childproc: protocol error")
)

// ProtocolError reports a peer that broke the protocol: an unexpected message, or a frame
// the codec rejected (Err then matches one of the messages package's sentinels).
type ProtocolError struct {
	Op  string // what was going on: "handshake", "read", ...
	Err error
}

// Error implements error.
func (e *ProtocolError) Error() string {
	return fmt.Sprintf("procsup/childproc: protocol error during %s: %v", e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *ProtocolError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrProtocol].
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// InitError is returned by [Serve] when the handler's Init failed; the same text went to
// the parent in the InitializeResponse.
type InitError struct {
	Err error
}

// Error implements error.
func (e *InitError) Error() string {
	return "procsup/childproc: initialization failed: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *InitError) Unwrap() error { return e.Err }

// PanicError is returned by [Serve] when the handler's Init or Run panicked: the panic's
// value and the goroutine's stack. The parent hears of it too.
type PanicError struct {
	Value string
	Stack string
}

// Error implements error.
func (e *PanicError) Error() string { return "panic: " + e.Value }
