package messages

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Event is implemented by every event procsup sends to a parent and publishes on the
// actor system's EventStream, and by nothing else: subscribe once, print each with %v,
// and switch on the types you care about. The events:
//
//   - from a process actor: [StateChanged], [Adopted], [HighPing], [MemoryWarning],
//     [MemoryLimitExceeded], [CPUWarning], [ChildMessage], [Exited];
//   - from a supervisor strategy (actors.NewStrategy): [Restarting], [RestartLimit];
//   - from a pool: [PoolEvent], [PoolBackoff], [Rollout].
type Event interface {
	// Actor is the actor the event is about: the process actor (for a pool's backoff,
	// the pool).
	Actor() *actor.PID
	// OSProcess is the OS pid of the process it is about, 0 when there is none.
	OSProcess() int
	// String is one line a person can read.
	String() string
}

var (
	_ Event = (*StateChanged)(nil)
	_ Event = (*Adopted)(nil)
	_ Event = (*HighPing)(nil)
	_ Event = (*MemoryWarning)(nil)
	_ Event = (*MemoryLimitExceeded)(nil)
	_ Event = (*CPUWarning)(nil)
	_ Event = (*ChildMessage)(nil)
	_ Event = (*Exited)(nil)
	_ Event = (*Restarting)(nil)
	_ Event = (*RestartLimit)(nil)
	_ Event = (*PoolEvent)(nil)
	_ Event = (*PoolBackoff)(nil)
	_ Event = (*Rollout)(nil)
)

// Actor implements Event.
func (e *StateChanged) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *StateChanged) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *StateChanged) String() string {
	return fmt.Sprintf("%s: %s -> %s%s", e.PID.GetId(), e.From, e.To, pidNote(e.OSPid))
}

// Actor implements Event.
func (e *Adopted) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *Adopted) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *Adopted) String() string {
	if e.Refused != "" {
		return fmt.Sprintf("%s: not adopted (%s): ended%s", e.PID.GetId(), e.Refused, pidNote(e.OSPid))
	}
	old := ""
	if e.Outdated {
		old = ", of an older config"
	}
	return fmt.Sprintf("%s: adopted, running since %s%s%s", e.PID.GetId(), e.StartedAt.Format(time.RFC3339), old, pidNote(e.OSPid))
}

// Actor implements Event.
func (e *HighPing) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *HighPing) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *HighPing) String() string {
	return fmt.Sprintf("%s: high ping, round trip %v over %v%s", e.PID.GetId(), e.RTT.Round(time.Microsecond), e.Threshold, pidNote(e.OSPid))
}

// Actor implements Event.
func (e *MemoryWarning) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *MemoryWarning) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *MemoryWarning) String() string {
	return fmt.Sprintf("%s: memory %.0f MB (%s) above the warning level of %.0f MB%s", e.PID.GetId(), mib(e.Bytes), e.Figure, mib(e.Warn), pidNote(e.OSPid))
}

// Actor implements Event.
func (e *CPUWarning) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *CPUWarning) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *CPUWarning) String() string {
	return fmt.Sprintf("%s: CPU %.0f%% of a core for %v, above the warning level of %.0f%%%s", e.PID.GetId(), e.Percent, e.Above.Round(time.Second), e.Warn, pidNote(e.OSPid))
}

// Actor implements Event.
func (e *MemoryLimitExceeded) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *MemoryLimitExceeded) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *MemoryLimitExceeded) String() string {
	return fmt.Sprintf("%s: memory %.0f MB (%s) above the limit of %.0f MB, killing it%s", e.PID.GetId(), mib(e.Bytes), e.Figure, mib(e.Limit), pidNote(e.OSPid))
}

// Actor implements Event.
func (e *ChildMessage) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *ChildMessage) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *ChildMessage) String() string {
	return fmt.Sprintf("%s: message %q from the child, %d bytes%s", e.PID.GetId(), e.Kind, len(e.Body), pidNote(e.OSPid))
}

// Actor implements Event.
func (e *Exited) Actor() *actor.PID { return e.PID }

// OSProcess implements Event.
func (e *Exited) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *Exited) String() string {
	how := fmt.Sprintf("exit code %d", e.ExitCode)
	if e.Signal != 0 {
		how = "signal " + e.Signal.String()
	}
	s := fmt.Sprintf("%s: %s, %s, killed=%v, up %v%s", e.PID.GetId(), e.Reason, how, e.Killed, e.Uptime.Round(time.Millisecond), pidNote(e.OSPid))
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Actor implements Event: the failed child.
func (e *Restarting) Actor() *actor.PID { return e.PID }

// OSProcess implements Event: the process that failed, when the cause says.
func (e *Restarting) OSProcess() int { return causePid(e.Cause) }

// String implements Event.
func (e *Restarting) String() string {
	return fmt.Sprintf("%s: restart #%d in %v: %v", e.PID.GetId(), e.Attempt, e.Delay.Round(time.Millisecond), e.Cause)
}

// Actor implements Event: the failed child.
func (e *RestartLimit) Actor() *actor.PID { return e.PID }

// OSProcess implements Event: the process that failed last, when the cause says.
func (e *RestartLimit) OSProcess() int { return causePid(e.Cause) }

// String implements Event.
func (e *RestartLimit) String() string {
	then := "stopped"
	if e.Escalated {
		then = "escalated"
	}
	return fmt.Sprintf("%s: %d failures within %v, %s: %v", e.PID.GetId(), e.Failures, e.Window, then, e.Cause)
}

// Actor implements Event: the pool's process.
func (e *PoolEvent) Actor() *actor.PID { return e.Process }

// OSProcess implements Event.
func (e *PoolEvent) OSProcess() int { return e.OSPid }

// String implements Event.
func (e *PoolEvent) String() string {
	return fmt.Sprintf("%s: %s %s%s", e.Pool.GetId(), e.Kind, e.Process.GetId(), pidNote(e.OSPid))
}

// Actor implements Event: the pool.
func (e *PoolBackoff) Actor() *actor.PID { return e.Pool }

// OSProcess implements Event: the process whose start failed last, when the cause says.
func (e *PoolBackoff) OSProcess() int { return causePid(e.Cause) }

// String implements Event.
func (e *PoolBackoff) String() string {
	return fmt.Sprintf("%s: %d failed starts, the next in %v: %v", e.Pool.GetId(), e.Failures, e.Delay.Round(time.Millisecond), e.Cause)
}

func pidNote(ospid int) string {
	if ospid == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", ospid)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// causePid is the OS pid a failure names (an actors.FailureError does), or 0.
func causePid(err error) int {
	var p interface{ FailedPid() int }
	if errors.As(err, &p) {
		return p.FailedPid()
	}
	return 0
}

// Actor implements Event.
func (e *Rollout) Actor() *actor.PID { return e.Pool }

// OSProcess implements Event.
func (e *Rollout) OSProcess() int { return 0 }

// String implements Event.
func (e *Rollout) String() string {
	s := fmt.Sprintf("%s: rollout %s, %d old and %d new processes", e.Pool.GetId(), e.Kind, e.Old, e.New)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
