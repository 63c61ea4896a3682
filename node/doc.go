// Package node spans procsup over several machines. A [Node] is an actor system with
// protoactor's remote and a hashicorp/memberlist member; its agent (an actor named
// "procsup-agent") starts and supervises workers from the specs registered on that node,
// by name: nothing that comes from the network names a binary.
//
// A remote process is a proxy actor ([Node.NewProcess]) that a user spawns in their own
// tree like actors.NewProcess. It places its worker on the least loaded live node (or a
// pinned one), watches it, re-publishes its events with its own PID, and answers Ask,
// Send, Close, Kill and GetStatus with the same types and typed errors as a local process
// actor, so actors.Ask, actors.Status, trees, strategies and probes work unchanged.
//
// # Failures
//
// The worker's own end (a crash, a hang, a memory limit) is reported to the proxy, which
// ends the same way a local process actor does: an unrequested end is a failure handed to
// the proxy's parent's strategy (its restart policy decides which), and a restart places
// the worker again, on whichever node is then least loaded. The node never restarts a
// worker by itself: one strategy, in the user's tree, decides.
//
// When membership declares a node dead, or the connection to it fails, its proxies end
// with messages.ReasonNodeLost (a [*NodeLostError]): a failure, so their strategies place
// replacements on live nodes.
//
// # Fencing
//
// Every node's agent sends a lease to every other live node every LeaseInterval. A node
// that hears no lease from the owner of workers it holds for LeaseTimeout, or that sees
// the owner's node declared dead, kills those workers. A node that was paused (SIGSTOP)
// and comes back kills them as soon as it runs again, since its lease expired while it
// was stopped; in the meantime its workers, which are separate processes, go on running,
// at most until the node runs again or their own orphan rule ends them (no message for
// PingTimeout + 10 s). Delivery across nodes is at most once.
//
// # Protocol and security
//
// Nodes speak package messages/nodepb (protobuf, versioned). Each node publishes its
// schema version in its membership metadata and refuses a peer of another version before
// anything of that package is sent to it. Nodes listen on 127.0.0.1 unless Config.Host
// says otherwise; Config.MembershipKey encrypts membership traffic; Config.RemoteOptions
// takes gRPC credentials for TLS between nodes.
package node
