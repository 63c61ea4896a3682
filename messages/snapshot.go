package messages

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// GetSnapshot asks any procsup actor what it is and holds: a process actor answers
// *Status, a tree *TreeInfo, a pool *PoolInfo. actors.Snapshot asks a whole tree.
type GetSnapshot struct{}

// TreeInfo answers GetSnapshot from a tree.
type TreeInfo struct {
	Children []*actor.PID // its children now, in the order of its specs
	// Failed names the children its strategy gave up on (RestartLimit), until they run
	// again; Stopped the others that have no actor (stopped on request, say).
	Failed, Stopped []string
}

// PoolInfo answers GetSnapshot from a pool.
type PoolInfo struct {
	Status  PoolStatus
	Members []*actor.PID // its process actors, idle, busy, starting and closing
}

// Respawn asks a tree to spawn again the children its strategy gave up on (or that
// stopped otherwise): an operator's "start" once the cause is fixed. Names limits it to
// those children; empty means all.
type Respawn struct{ Names []string }

// RestartChild asks a tree to restart its child named Name: to stop it (a process actor
// closes its process gracefully) and, once it is gone, to spawn it again, as an operator
// restarts one worker. A child that is not running is spawned.
type RestartChild struct{ Name string }

// Snapshot is the state of one actor of a supervision tree and of everything below it,
// as actors.Snapshot gathers it. It is made for JSON (the status page serves it so).
type Snapshot struct {
	Name string `json:"name"` // the last part of its id
	ID   string `json:"id"`
	// Kind is "process", "tree", "pool", or "unanswered" (it did not answer in time, or
	// is gone: Error says which).
	Kind    string       `json:"kind"`
	Process *ProcessView `json:"process,omitempty"`
	Pool    *PoolStatus  `json:"pool,omitempty"`
	Failed  []string     `json:"failed,omitempty"`  // a tree's children given up on
	Stopped []string     `json:"stopped,omitempty"` // a tree's other children without an actor
	Error   string       `json:"error,omitempty"`
	// Children are a tree's children or a pool's processes.
	Children []*Snapshot `json:"children,omitempty"`
	// Counts are the processes of this subtree by state ("running", "dead"...), and
	// "unanswered" for actors that did not answer.
	Counts map[string]int `json:"counts"`
}

// ProcessView is a process actor's Status in plain values.
type ProcessView struct {
	State        string  `json:"state"`
	OSPid        int     `json:"os_pid"`
	Restarts     int     `json:"restarts"`
	Uptime       float64 `json:"uptime_seconds"`
	LastReason   string  `json:"last_reason,omitempty"` // why the last process ended
	LastError    string  `json:"last_error,omitempty"`
	MemoryBytes  uint64  `json:"memory_bytes"`
	MemoryFigure string  `json:"memory_figure,omitempty"`
	CPU          float64 `json:"cpu_seconds"`
	CPUPercent   float64 `json:"cpu_percent"`
	PingRTT      float64 `json:"ping_rtt_seconds"` // the last ping's round trip; 0 before the first
	Cgroup       string  `json:"cgroup,omitempty"`
	// CPUSampled says CPUPercent was measured (see Status.CPUSampled); MemoryFigure ""
	// says MemoryBytes was not.
	CPUSampled  bool    `json:"cpu_sampled,omitempty"`
	MemoryWarn  uint64  `json:"memory_warn_bytes,omitempty"`
	MemoryLimit uint64  `json:"memory_limit_bytes,omitempty"`
	Command     string  `json:"command,omitempty"`
	Node        string  `json:"node,omitempty"` // where it runs, for a remote process
	LogsDropped uint64  `json:"logs_dropped,omitempty"`
	StartedAt   float64 `json:"started_at_unix,omitempty"` // when the current (or last) process started
	Adopted     bool    `json:"adopted,omitempty"`         // an earlier program started it (see Status.Adopted)
}

// View turns a Status into a ProcessView.
func (s *Status) View() *ProcessView {
	v := &ProcessView{State: s.State.String(), OSPid: s.OSPid, Restarts: s.Restarts, Uptime: s.Uptime.Seconds(),
		MemoryBytes: s.Memory, MemoryFigure: s.MemoryFigure, CPU: s.CPU.Seconds(), CPUPercent: s.CPUPercent,
		PingRTT: s.PingRTT.Seconds(), Cgroup: s.Cgroup, CPUSampled: s.CPUSampled, MemoryWarn: s.MemoryWarn,
		MemoryLimit: s.MemoryLimit, Command: s.Command, Node: s.Node, LogsDropped: s.LogsDropped, Adopted: s.Adopted}
	if !s.StartedAt.IsZero() {
		v.StartedAt = float64(s.StartedAt.UnixNano()) / 1e9
	}
	if s.Reason != ReasonNone {
		v.LastReason = s.Reason.String()
	}
	if s.LastError != nil {
		v.LastError = s.LastError.Error()
	}
	return v
}

// Walk calls f on s and on everything below it, each before its children, in order.
func (s *Snapshot) Walk(f func(*Snapshot)) {
	f(s)
	for _, c := range s.Children {
		c.Walk(f)
	}
}

// Problems lists what makes this subtree unhealthy, one line each: a tree's children
// given up on, a pool whose starts fail, an actor that did not answer. None is healthy.
func (s *Snapshot) Problems() []string {
	var out []string
	s.Walk(func(n *Snapshot) {
		switch {
		case n.Kind == "unanswered":
			out = append(out, fmt.Sprintf("%s did not answer: %s", n.ID, n.Error))
		case len(n.Failed) > 0:
			out = append(out, fmt.Sprintf("%s gave up on %v (restart limit)", n.ID, n.Failed))
		case n.Pool != nil:
			if n.Pool.Failures > 0 {
				out = append(out, fmt.Sprintf("%s: %d starts in a row failed", n.ID, n.Pool.Failures))
			}
			if n.Pool.RolloutFailures > 0 {
				out = append(out, fmt.Sprintf("%s: %d new processes of its rollout failed", n.ID, n.Pool.RolloutFailures))
			}
			if n.Pool.RolloutAborted != "" {
				out = append(out, fmt.Sprintf("%s: its rollout was aborted: %s", n.ID, n.Pool.RolloutAborted))
			}
		}
	})
	return out
}
