package wire

import (
	"errors"
	"fmt"
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
	return fmt.Sprintf("procsup/messages: frame of %d bytes%s exceeds the maximum of %d", e.Size, dir, e.Max)
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
	return fmt.Sprintf("procsup/messages: unknown message type %q", e.Type)
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
		return fmt.Sprintf("procsup/messages: malformed %q frame: %v", e.Type, e.Err)
	}
	return fmt.Sprintf("procsup/messages: malformed frame: %v", e.Err)
}

// Is reports whether target is [ErrMalformed].
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }
