// Package childproc is the runtime a child program links to speak procsup's protocol.
// It imports the wire protocol (package messages/wire) and nothing of the actor system,
// and uses neither log/slog nor fmt (a child that does not log through slog links none of
// their code), so a child binary stays small and starts as fast as its language allows.
//
// A child program implements [Handler] (or fills [HandlerFuncs]) and calls [Main] or
// [Serve]. The runtime answers the handshake and every ping, delivers messages and
// requests, ships log records to the parent without ever blocking ([Peer.Log]; package
// childproc/childlog is the slog logger on top of it), and exits when the parent asks, when the parent's socket closes, or when the parent
// has been silent for its ping timeout plus [DefaultSilenceGrace].
//
// [Register] and [RunEntry] let one binary be both parent and child: the parent starts
// itself again (launch.SelfCommand), and the new process runs a registered handler.
//
// The parent's side, starting a child, is package childproc/launch.
package childproc
