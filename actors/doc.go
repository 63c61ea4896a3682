// Package actors supervises operating-system processes as protoactor-go actors.
//
// # The process actor
//
// [NewProcess] returns the props of an actor that owns one child process. Its states are
// protoactor behaviors, one method each, switched by messages:
//
//	starting ──► initializing ──► running ──► closing ──► dead
//
// Starting launches the process (childproc/launch) with its two sockets; initializing
// waits for the child's InitializeResponse; running pings it, samples its memory and
// carries messages and requests both ways; closing waits for its exit after a
// ShutdownRequest, then kills its process group. Its child actors each do one job: the
// reader (control frames), the log reader (the child's slog records into your logger),
// the joiner (the exit, through a pidfd), the pinger and the memory monitor.
//
// Commands (package messages): Close, Kill, Send, Ask, GetStatus; [Ask], [Send] and
// [Status] are the one-call forms, each bounded by its context. Every Ask gets exactly
// one answer, and Asks sent before the process runs are held until it does. While the
// process runs, Ask and Send write on the caller's goroutine (ask.go tells the whole
// path); the ending's reason is decided in one place (ending.go).
//
// # How it ends, and who hears
//
// Every event implements messages.Event and goes to the actor's parent and to the actor
// system's EventStream: StateChanged, HighPing, MemoryWarning, MemoryLimitExceeded,
// ChildMessage, Exited. A requested end (Close, Kill, the actor stopped) stops the actor
// once the process is reaped and its group is empty. Any other end is a failure handed
// to the parent's supervisor strategy as a [*FailureError] (a restart policy decides
// which ends are failures): [NewStrategy] restarts with exponential backoff and jitter up
// to an intensity limit, and tells the supervising actor and the EventStream
// (messages.Restarting, messages.RestartLimit).
//
// # Trees and pools
//
// [NewTree] is a supervisor for a list of [Spec]s that forwards every event below it to
// its own parent, so trees nest and the actor at the top hears everything. [NewPool]
// keeps processes initialized ahead of demand; [Acquire] takes one, [Release] gives it
// back.
package actors
