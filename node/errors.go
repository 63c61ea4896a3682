package node

import (
	"errors"
	"fmt"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
)

var (
	// ErrBadConfig wraps every error of [Config.validate] and [ProcessConfig]'s checks.
	ErrBadConfig = errors.New("procsup/node: bad config")
	// ErrUnknownSpec: a node was asked to start a worker spec it has not registered.
	ErrUnknownSpec = errors.New("procsup/node: no worker spec of that name on the node")
	// ErrNoNode: no live node of this schema version offers the spec (or the pinned node
	// is not live).
	ErrNoNode = errors.New("procsup/node: no live node to place the process on")
	// ErrSchemaMismatch: a peer speaks another schema version of the node protocol; it is
	// refused membership and nothing is sent to it.
	ErrSchemaMismatch = errors.New("procsup/node: peer speaks another schema version")
	// ErrStartFailed: the node could not be started (listen, membership, join).
	ErrStartFailed = errors.New("procsup/node: node could not start")
)

// NodeLostError is the Err of the Exited (and of the failure handed to the proxy's
// supervisor) of a remote process whose node was lost: declared dead by membership, its
// connection gone, or its workers fenced because their owner's lease expired. The worker
// may still be running there; see the README's promises. It matches
// messages.ReasonNodeLost.
type NodeLostError struct {
	Node string // the node's name, where known
	How  string // what told us
}

// Error implements error.
func (e *NodeLostError) Error() string {
	return fmt.Sprintf("procsup/node: node %q lost: %s", e.Node, e.How)
}

// Is reports whether target is messages.ReasonNodeLost.
func (e *NodeLostError) Is(target error) bool { return target == messages.ReasonNodeLost }

// notRunning is the error of a command the process actor did not answer as one: it had
// stopped (the answer is a dead letter).
func notRunning(answer any) error {
	return fmt.Errorf("%w: answered with %T", actors.ErrNotRunning, answer)
}
