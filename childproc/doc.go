// Package childproc is the child process: how a parent starts it, and the runtime a
// child program links to speak procsup's protocol.
//
// # Parent side
//
// [Start] makes the two socket pairs (control and logs), has a [Launcher] (usually a
// [Command]) start the child with its ends as descriptors 3 and 4, and returns a
// [Process]. The child runs in its own process group with a parent-death signal, so
// [Process.Kill] ends the child and its descendants, and the child dies with the parent.
// Every child is started from one goroutine locked to one OS thread, because the
// parent-death signal follows the thread that forked; waiting for the exit uses a pidfd
// in the netpoller, so no thread is held per child.
//
// # Child side
//
// A child program implements [Handler] (or fills [HandlerFuncs]) and calls [Main] or
// [Serve]. The runtime answers the handshake and every ping, delivers messages and
// requests, ships slog records to the parent through a [LogHandler] that never blocks,
// and exits when the parent asks, when the parent's socket closes, or when the parent
// has been silent for its ping timeout plus [DefaultSilenceGrace].
//
// [Register], [RunEntry] and [SelfCommand] let one binary be both: the parent starts
// itself again, and the new process runs a registered handler.
package childproc
