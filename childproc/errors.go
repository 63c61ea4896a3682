//go:build linux

package childproc

import (
	"errors"
	"reflect"
	"runtime/debug"
	"strconv"
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
	cause := "<nil>"
	if e.Err != nil {
		cause = e.Err.Error()
	}
	return "procsup/childproc: protocol error during " + e.Op + ": " + cause
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

// recovered returns the PanicError of the value v a recover returned, with the stack of
// the goroutine that recovered it.
func recovered(v any) *PanicError {
	return &PanicError{Value: panicValue(v), Stack: string(debug.Stack())}
}

// panicValue writes a panic's value as the runtime would, without package fmt (which,
// with the reflection its printing needs, the child runtime does not link: a smaller
// binary, less memory resident). A value of another kind is named by its type.
func panicValue(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case interface{ String() string }:
		return x.String()
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int8:
		return strconv.FormatInt(int64(x), 10)
	case int16:
		return strconv.FormatInt(int64(x), 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint:
		return strconv.FormatUint(uint64(x), 10)
	case uint8:
		return strconv.FormatUint(uint64(x), 10)
	case uint16:
		return strconv.FormatUint(uint64(x), 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case uintptr:
		return strconv.FormatUint(uint64(x), 10)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return "a value of type " + reflect.TypeOf(v).String()
}

// notChild is ErrNotChild with what was wrong.
type notChild string

// Error implements error.
func (e notChild) Error() string { return ErrNotChild.Error() + ": " + string(e) }

// Unwrap returns ErrNotChild.
func (notChild) Unwrap() error { return ErrNotChild }
