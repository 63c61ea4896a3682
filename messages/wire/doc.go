// Package wire is procsup's wire protocol: the messages a supervised child and its parent
// exchange over their sockets, the frame codec that carries them, and its typed errors.
// It imports nothing of the actor system: a child program links this and the child
// runtime (package childproc) alone.
//
// # Frames
//
// Every frame is a 4-byte big-endian length followed by a msgpack body, a map with the
// message's "type" and its "data" fields by stable names. [Writer] writes frames and is
// safe for concurrent use; [Reader] reads them from one goroutine. The reader checks a
// frame's length against a maximum ([DefaultMaxFrame] unless configured) before it
// allocates, and checks the body's shape before it decodes, so no input makes it panic or
// allocate beyond that cap. Its errors match [ErrFrameTooLarge], [ErrUnknownType],
// [ErrMalformed] or [ErrClosed] with [errors.Is], and carry details as
// [*FrameTooLargeError], [*UnknownTypeError] and [*DecodeError].
//
// The full specification, precise enough to implement a child in another language, is in
// PROTOCOL.md beside this file; testdata/vectors.txt holds test vectors and
// testdata/rules.txt the receiving rules, a frame each.
package wire
