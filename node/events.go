package node

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// Events a node publishes on its actor system's EventStream (each is a messages.Event,
// about the node's agent). A remote process's own events are the messages types,
// published by its proxy with the proxy's PID.
type (
	// MemberJoined: a node of this schema version joined (or was first seen).
	MemberJoined struct {
		Agent  *actor.PID
		Node   string
		Remote string
	}
	// MemberLost: membership declared a node dead, or it left. Proxies placed there end
	// with messages.ReasonNodeLost; workers held here for it are fenced.
	MemberLost struct {
		Agent  *actor.PID
		Node   string
		Remote string
	}
	// MemberRefused: a node tried to join with another schema version (or unreadable
	// metadata) and was refused. Published once per node and reason.
	MemberRefused struct {
		Agent *actor.PID
		Node  string
		Addr  string
		Err   error
	}
	// WorkersFenced: this node killed the workers it held for an owner it lost sight of.
	WorkersFenced struct {
		Agent   *actor.PID
		Owner   string // the owner node's remote address
		Workers int
		Why     string
	}
)

var (
	_ messages.Event = (*MemberJoined)(nil)
	_ messages.Event = (*MemberLost)(nil)
	_ messages.Event = (*MemberRefused)(nil)
	_ messages.Event = (*WorkersFenced)(nil)
)

// Actor implements messages.Event.
func (e *MemberJoined) Actor() *actor.PID { return e.Agent }

// OSProcess implements messages.Event.
func (e *MemberJoined) OSProcess() int { return 0 }

// String implements messages.Event.
func (e *MemberJoined) String() string {
	return fmt.Sprintf("member %s joined (remote %s)", e.Node, e.Remote)
}

// Actor implements messages.Event.
func (e *MemberLost) Actor() *actor.PID { return e.Agent }

// OSProcess implements messages.Event.
func (e *MemberLost) OSProcess() int { return 0 }

// String implements messages.Event.
func (e *MemberLost) String() string {
	return fmt.Sprintf("member %s lost (remote %s)", e.Node, e.Remote)
}

// Actor implements messages.Event.
func (e *MemberRefused) Actor() *actor.PID { return e.Agent }

// OSProcess implements messages.Event.
func (e *MemberRefused) OSProcess() int { return 0 }

// String implements messages.Event.
func (e *MemberRefused) String() string {
	return fmt.Sprintf("member %s at %s refused: %v", e.Node, e.Addr, e.Err)
}

// Actor implements messages.Event.
func (e *WorkersFenced) Actor() *actor.PID { return e.Agent }

// OSProcess implements messages.Event.
func (e *WorkersFenced) OSProcess() int { return 0 }

// String implements messages.Event.
func (e *WorkersFenced) String() string {
	return fmt.Sprintf("fenced %d worker(s) of owner %s: %s", e.Workers, e.Owner, e.Why)
}
