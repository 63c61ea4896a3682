package wire

import (
	"errors"
	"reflect"
	"strconv"
)

// Sentinel errors of the frame codec. Every error returned by [Reader.Read] and
// [Writer.Write] matches exactly one of them with [errors.Is].
var (
	// ErrFrameTooLarge: a frame's declared length exceeds the configured maximum. The
	// stream cannot be resynchronised after it.
	ErrFrameTooLarge = errors.New("procsup/messages: frame too large")
	// ErrUnknownType: a frame names a message type this side does not know.
	ErrUnknownType = errors.New("procsup/messages: unknown message type")
	// ErrMalformed: a frame's body does not decode (bad msgpack, wrong field types, a
	// truncated frame, nesting too deep).
	ErrMalformed = errors.New("procsup/messages: malformed frame")
	// ErrClosed: the connection ended cleanly at a frame boundary.
	ErrClosed = errors.New("procsup/messages: connection closed")
)

// FrameTooLargeError reports a frame whose length prefix exceeds the maximum. It matches
// [ErrFrameTooLarge].
type FrameTooLargeError struct {
	Size      uint64 // the declared size of the body; when writing, its encoded size or a lower bound of it
	Max       int    // the maximum: the reader's own, or the one the receiver announced
	Direction string // which way the frame went ("to the child", "from the child"...), where the side knows
}

// Error implements error.
func (e *FrameTooLargeError) Error() string {
	dir := ""
	if e.Direction != "" {
		dir = " " + e.Direction
	}
	return "procsup/messages: frame of " + strconv.FormatUint(e.Size, 10) + " bytes" + dir + " exceeds the maximum of " + strconv.Itoa(e.Max)
}

// Is reports whether target is [ErrFrameTooLarge].
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// UnknownTypeError reports a frame whose message type is not known. It matches
// [ErrUnknownType]. The stream stays usable after it: the whole frame was consumed.
type UnknownTypeError struct {
	Type string
}

// Error implements error.
func (e *UnknownTypeError) Error() string {
	return "procsup/messages: unknown message type " + strconv.Quote(e.Type)
}

// Is reports whether target is [ErrUnknownType].
func (e *UnknownTypeError) Is(target error) bool { return target == ErrUnknownType }

// DecodeError reports a frame that could not be decoded; Err is the cause (for a truncated
// frame, [io.ErrUnexpectedEOF]). It matches [ErrMalformed].
type DecodeError struct {
	Type string // the message type, when it was read before the failure
	Err  error
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Type != "" {
		return "procsup/messages: malformed " + strconv.Quote(e.Type) + " frame: " + errText(e.Err)
	}
	return "procsup/messages: malformed frame: " + errText(e.Err)
}

// Is reports whether target is [ErrMalformed].
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// closedError is ErrClosed with the socket's error that meant it.
type closedError struct{ err error }

// Error implements error.
func (e *closedError) Error() string { return ErrClosed.Error() + ": " + e.err.Error() }

// Unwrap returns ErrClosed and the socket's error.
func (e *closedError) Unwrap() []error { return []error{ErrClosed, e.err} }

// The package's errors are written without package fmt, so that a child, which links
// this package, links no fmt (nor the reflection behind it) unless it uses fmt itself:
// a smaller binary, fewer pages resident.

// errText is err's text, "<nil>" for none, as fmt's %v writes it.
func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// hexCode writes a msgpack code as fmt's %#x does.
func hexCode(c byte) string { return "0x" + strconv.FormatUint(uint64(c), 16) }

// typeName names v's type as fmt's %T does.
func typeName(v any) string {
	if v == nil {
		return "<nil>"
	}
	return reflect.TypeOf(v).String()
}
