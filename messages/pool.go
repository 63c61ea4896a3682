package messages

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Commands and queries to a pool actor.
type (
	// Acquire asks the pool for an idle, initialized process. The pool answers the
	// sender with an *Acquired by Deadline at the latest (a zero Deadline waits as long
	// as it takes). actors.Acquire wraps it with a context.
	Acquire struct{ Deadline time.Time }
	// Release gives an acquired process back: a reusable pool returns it to idle, a
	// single-use pool closes it.
	Release struct{ PID *actor.PID }
	// SetTarget changes how many idle processes the pool keeps ready.
	SetTarget struct{ Target int }
	// Drain stops handing processes out, closes the idle ones, waits up to Timeout for
	// the busy ones to be released, then closes them; the sender gets *Drained when no
	// process of the pool is left.
	Drain struct{ Timeout time.Duration }
	// GetPoolStatus asks for a *PoolStatus.
	GetPoolStatus struct{}
)

// Acquired answers Acquire: a process actor's PID, or Err.
type Acquired struct {
	PID *actor.PID
	Err error
}

// Drained answers Drain.
type Drained struct{}

// PoolStatus answers GetPoolStatus.
type PoolStatus struct {
	Idle, Busy, Starting, Closing int
	Waiting                       int // callers waiting in Acquire
	Target                        int
	Failures                      int  // consecutive failed starts
	Draining                      bool // draining, or the pool actor is stopping
	// RolloutFailures counts the new processes of the rollout under way that failed:
	// to start, or by ending unasked after they were ready.
	RolloutFailures int
	// RolloutAborted is why the last rollout was aborted, until a later one is done.
	RolloutAborted string
}

// PoolEventKind says what happened to a pool's process.
type PoolEventKind int

// The pool's events.
const (
	PoolCreated  PoolEventKind = iota // a process actor was spawned
	PoolStarted                       // its process started (pid known)
	PoolReady                         // it initialized and is idle
	PoolAcquired                      // handed to a caller
	PoolReleased                      // given back
	PoolClosed                        // it ended and left the pool
	PoolRecycled                      // retired after its uses or its age (PoolConfig.MaxUses, MaxAge)
	PoolRetired                       // retired by a rolling replacement
)

var poolEventNames = [...]string{"created", "started", "ready", "acquired", "released", "closed", "recycled", "retired"}

// String implements fmt.Stringer.
func (k PoolEventKind) String() string {
	if int(k) < len(poolEventNames) {
		return poolEventNames[k]
	}
	return "PoolEventKind(?)"
}

// Events a pool sends to its parent and publishes on the EventStream.
type (
	// PoolEvent: something happened to one of the pool's processes.
	PoolEvent struct {
		Pool    *actor.PID
		Kind    PoolEventKind
		Process *actor.PID
		OSPid   int
	}
	// Rollout: the progress of a rolling replacement (actors.Rollout): Old processes of
	// the previous config are left, New of the new one run.
	Rollout struct {
		Pool     *actor.PID
		Kind     RolloutKind
		Old, New int
		Err      error // why it was aborted
	}
	// PoolBackoff: starts keep failing; the next start waits Delay.
	PoolBackoff struct {
		Pool     *actor.PID
		Failures int
		Delay    time.Duration
		Cause    error
	}
)

// RolloutKind says where a rolling replacement is.
type RolloutKind int

// The steps of a rolling replacement.
const (
	RolloutStarted  RolloutKind = iota // the new config is in; replacements start
	RolloutProgress                    // an old process was retired
	RolloutDone                        // no old process is left
	RolloutAborted                     // the new processes failed to start: the old config is back
)

var rolloutNames = [...]string{"started", "progress", "done", "aborted"}

// String implements fmt.Stringer.
func (k RolloutKind) String() string {
	if int(k) < len(rolloutNames) {
		return rolloutNames[k]
	}
	return "RolloutKind(?)"
}
