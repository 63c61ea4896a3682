package messages

import (
	"fmt"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages/wire"
)

// State is a process actor's state.
type State int

// The states, in the order a process goes through them.
const (
	Starting State = iota
	Initializing
	Running
	Closing
	Dead
)

// String implements fmt.Stringer.
func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Initializing:
		return "initializing"
	case Running:
		return "running"
	case Closing:
		return "closing"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Reason says why a process ended. It is an error, so a failure handed to a supervisor
// can be tested with errors.Is(err, messages.ReasonCrashed).
type Reason int

// The reasons a process ends.
const (
	ReasonNone          Reason = iota
	ReasonStartFailed          // the process could not be started
	ReasonInitFailed           // its initialization returned an error
	ReasonInitTimeout          // it did not answer the InitializeRequest in time: killed
	ReasonUnresponsive         // no pong within the ping timeout: killed
	ReasonMemoryLimit          // memory above the limit: killed
	ReasonProtocolError        // it broke the protocol (garbage, wrong message, closed socket): killed
	ReasonCrashed              // it exited by itself with a non-zero code or a signal
	ReasonExited               // it exited by itself with code 0
	ReasonClosed               // closed on request (Close, or the actor stopped)
	ReasonKilled               // killed on request (Kill)
	ReasonOOMKilled            // the kernel's OOM killer killed it (its cgroup's memory.max)
	ReasonNodeLost             // the node it ran on was lost (package node): its fate is unknown
)

var reasonNames = [...]string{
	"none", "start failed", "initialization failed", "initialization timed out", "unresponsive",
	"memory limit exceeded", "protocol error", "crashed", "exited by itself", "closed on request",
	"killed on request", "killed by the OOM killer", "node lost",
}

// String implements fmt.Stringer.
func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Error implements error.
func (r Reason) Error() string { return r.String() }

// Requested reports whether the end was asked for (Close, Kill or stopping the actor)
// rather than a failure.
func (r Reason) Requested() bool { return r == ReasonClosed || r == ReasonKilled }

// Commands to a process actor.
type (
	// Close asks the process to shut down: ShutdownRequest, then a kill of its group
	// after CloseTimeout. The actor stops once the process is reaped.
	Close struct{ Reason string }
	// Kill kills the process's group at once. The actor stops once the process is reaped.
	Kill struct{}
	// Send sends a one-way message to the child. Sent before the process runs, it is held
	// and sent when it does (see actors.Config.MaxHeld). With a sender (Request,
	// RequestFuture), the sender gets a *Response whose Err says whether it was written.
	Send struct {
		Kind string
		Body []byte
	}
	// Ask sends a request to the child; the sender gets exactly one *Response. It works
	// with RequestFuture and ReenterAfter; actors.Ask is the one-call form. Sent before the
	// process runs, it is held and sent when it does. (The wire's request is [wire.Request].)
	Ask struct {
		Kind string
		Body []byte
	}
	// GetStatus asks for a *Status.
	GetStatus struct{}
)

// Response answers an Ask (and a Send that has a sender): the child's reply body, or Err,
// one of the errors documented on actors.Ask.
type Response struct {
	Body []byte
	Err  error
}

// RemoteError is an error the child returned for an Ask. Code classifies it where the
// child's runtime did ([wire.CodeFrameTooLarge], [wire.CodePanic], [wire.CodeUnhandled]); a
// reply too large to send matches [wire.ErrFrameTooLarge].
type RemoteError struct {
	Message string
	Code    string
}

// Error implements error.
func (e *RemoteError) Error() string { return "child: " + e.Message }

// Is reports whether target is [wire.ErrFrameTooLarge] for a reply the child could not send.
func (e *RemoteError) Is(target error) bool {
	return target == wire.ErrFrameTooLarge && e.Code == wire.CodeFrameTooLarge
}

// ChildError is Exited.Err for a child that ended by itself after telling why (its
// Exiting message): Reason as it said it, and Panic (the value and the stack) when its
// code panicked.
type ChildError struct {
	Reason string
	Panic  string
}

// Error implements error.
func (e *ChildError) Error() string { return "child: " + e.Reason }

// Status is a process actor's answer to GetStatus.
type Status struct {
	State     State
	OSPid     int       // the OS pid of the current (or last) process; 0 before the first start
	StartedAt time.Time // when the current (or last) process started
	ExitCode  int       // of the last process; -1 when a signal ended it
	Signal    syscall.Signal
	Killed    bool   // procsup killed the last process
	Reason    Reason // why the last process ended
	Restarts  int    // how many times the actor was restarted
	Uptime    time.Duration
	LastError error
	// LogsDropped counts the child's log records that did not reach the parent's
	// logger: dropped by the child (its buffer was full), over LogRate, or unreadable.
	LogsDropped uint64
	// CPU is the CPU time the current (or last) process used, user and system: with a
	// cgroup, it and all its descendants, read when asked; without, it and the children
	// it waited for, as of the monitor's last sample while a monitor runs (at most
	// MemorySampleInterval old), else read when asked.
	CPU time.Duration
	// CPUPercent is its use over the last sample interval, in percent of one core (0
	// until the monitor has taken two samples, or when no monitor runs).
	CPUPercent float64
	// Memory is the last memory sample in bytes, of the kind MemoryFigure names ("pss",
	// "rss", or "cgroup" for the cgroup's memory.current); 0 when none was taken.
	Memory       uint64
	MemoryFigure string
	// PingRTT is the last ping's round trip (0 before the first pong).
	PingRTT time.Duration
	// MemoryWarn and MemoryLimit are the memory levels the process is held to, in
	// bytes (0: none).
	MemoryWarn, MemoryLimit uint64
	// CPUSampled says CPUPercent was measured: the monitor samples CPU where
	// Config.CPUWarnPercent turns its check on.
	CPUSampled bool
	// Command is what the launcher says it starts, when it is a fmt.Stringer (a
	// *launch.Command is: its program and arguments); "" otherwise.
	Command string
	// Cgroup is the process's cgroup directory, when it has one.
	Cgroup string
	// Stderr is the end of what the process wrote to its stderr, when the config keeps
	// it (actors.Config.StderrTail), in the answer to GetStatus; the answer to
	// GetSnapshot, one of many in a snapshot, leaves it out.
	Stderr string
	// Node is the name of the node the process runs on, for a remote process (package
	// node); empty for a process of this node.
	Node string
	// Adopted says the current process was adopted from a keeper (actors.Config.Keeper):
	// an earlier program started it.
	Adopted bool
	// CPUPressure and MemoryPressure are the cgroup's pressure figures where the kernel
	// keeps them: the share of the last 10 s in which some task of the cgroup waited for
	// CPU or memory ("some avg10" of cpu.pressure and memory.pressure, 0 to 100).
	CPUPressure, MemoryPressure float64
}

// Events a process actor sends to its parent and publishes on the actor system's
// EventStream (each is an [Event]). PID is the process actor's; OSPid the process's.
type (
	// StateChanged: the actor moved from one state to another.
	StateChanged struct {
		PID      *actor.PID
		OSPid    int
		From, To State
	}
	// Adopted: the actor took over a process an earlier program started through a
	// keeper (actors.Config.Keeper), running since StartedAt. Outdated says it was
	// started with another config (another build of the program, say). Refused, when
	// not empty, says why the actor did not take it over: it ended it and starts a new one.
	Adopted struct {
		PID       *actor.PID
		OSPid     int
		StartedAt time.Time
		Outdated  bool
		Refused   string
	}
	// HighPing: a ping's round trip, measured on the parent's clock, exceeded the
	// threshold.
	HighPing struct {
		PID       *actor.PID
		OSPid     int
		RTT       time.Duration
		Threshold time.Duration
	}
	// MemoryWarning: memory is above the warning level (rate-limited by a cooldown,
	// repeated early when it grows).
	MemoryWarning struct {
		PID    *actor.PID
		OSPid  int
		Bytes  uint64 // the figure measured
		Figure string // "pss" or "rss"
		Growth uint64 // above the first sample
		Warn   uint64 // the warning level
	}
	// CPUWarning: CPU use stayed above the warning level for the configured period
	// (rate-limited by a cooldown).
	CPUWarning struct {
		PID     *actor.PID
		OSPid   int
		Percent float64       // over the last sample interval, of one core
		Warn    float64       // the warning level, in percent of one core
		Above   time.Duration // how long it has been above
		CPU     time.Duration // the CPU time used so far
	}
	// MemoryLimitExceeded: memory is above the limit; the process is being killed.
	MemoryLimitExceeded struct {
		PID    *actor.PID
		OSPid  int
		Bytes  uint64
		Figure string
		Limit  uint64
	}
	// ChildMessage: a one-way message from the child.
	ChildMessage struct {
		PID   *actor.PID
		OSPid int
		Kind  string
		Body  []byte
	}
	// Exited: the process ended and was reaped, and its logs were read to the end.
	Exited struct {
		PID      *actor.PID
		OSPid    int
		ExitCode int // -1 when a signal ended it
		Signal   syscall.Signal
		Killed   bool // procsup killed it
		Reason   Reason
		Err      error // detail, where there is one (the init error, the protocol error, a *ChildError)
		Uptime   time.Duration
		// LogsDropped counts the child's log records that did not reach the parent's
		// logger (see Status.LogsDropped).
		LogsDropped uint64
		// Stderr is the end of what the child wrote to its stderr, when the config keeps
		// it (actors.Config.StderrTail).
		Stderr string
		// CPU is the CPU time it used (see Status.CPU).
		CPU time.Duration
	}
	// Restarting: a supervisor strategy will restart a failed actor after Delay.
	Restarting struct {
		PID     *actor.PID
		Attempt int // consecutive failures, 1 for the first
		Delay   time.Duration
		Cause   error
	}
	// RestartLimit: a supervisor strategy saw more failures than its intensity limit
	// allows and stopped (or escalated) instead of restarting.
	RestartLimit struct {
		PID       *actor.PID
		Failures  int
		Window    time.Duration
		Escalated bool
		Cause     error
	}
)
