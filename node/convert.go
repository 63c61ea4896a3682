package node

import (
	"errors"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/nodepb"
	"github.com/procsup/procsup/messages/wire"
)

// sentinels maps the wire's error kinds to procsup's sentinel errors, both ways.
var sentinels = []struct {
	kind nodepb.Error_Kind
	err  error
}{
	{nodepb.Error_NOT_RUNNING, actors.ErrNotRunning},
	{nodepb.Error_PROCESS_ENDED, actors.ErrProcessEnded},
	{nodepb.Error_HELD_FULL, actors.ErrHeldFull},
	{nodepb.Error_CHILD_NOT_READING, actors.ErrChildNotReading},
	{nodepb.Error_NOT_PROCESS, actors.ErrNotProcess},
	{nodepb.Error_UNKNOWN_SPEC, ErrUnknownSpec},
	{nodepb.Error_BAD_CONFIG, actors.ErrBadConfig},
}

// errorOut encodes err for another node; nil for nil.
func errorOut(err error) *nodepb.Error {
	if err == nil {
		return nil
	}
	e := &nodepb.Error{Message: err.Error()}
	var re *messages.RemoteError
	var fe *wire.FrameTooLargeError
	switch {
	case errors.As(err, &re):
		e.Kind, e.Message, e.Code = nodepb.Error_REMOTE, re.Message, re.Code
		return e
	case errors.As(err, &fe):
		e.Kind, e.Size, e.Max, e.Code = nodepb.Error_FRAME_TOO_LARGE, int64(fe.Size), int64(fe.Max), fe.Direction
		return e
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			e.Kind = s.kind
			break
		}
	}
	var r messages.Reason
	if errors.As(err, &r) {
		e.Reason = int32(r)
	}
	return e
}

// errorIn decodes an error from another node: the same types and sentinels as the error
// it was (errors.Is and errors.As work), with the original's message.
func errorIn(e *nodepb.Error) error {
	if e == nil {
		return nil
	}
	switch e.Kind {
	case nodepb.Error_REMOTE:
		return &messages.RemoteError{Message: e.Message, Code: e.Code}
	case nodepb.Error_FRAME_TOO_LARGE:
		return &wire.FrameTooLargeError{Size: uint64(e.Size), Max: int(e.Max), Direction: e.Code}
	}
	re := &remoteErr{msg: e.Message, reason: messages.Reason(e.Reason)}
	for _, s := range sentinels {
		if s.kind == e.Kind {
			re.sentinel = s.err
		}
	}
	return re
}

// remoteErr is an error that came from another node: its message, and the sentinel and
// reason it wrapped there.
type remoteErr struct {
	msg      string
	sentinel error
	reason   messages.Reason
}

func (e *remoteErr) Error() string { return e.msg }

// Is matches the sentinel and the reason the error wrapped on its node.
func (e *remoteErr) Is(target error) bool {
	if e.sentinel != nil && target == e.sentinel {
		return true
	}
	r, ok := target.(messages.Reason)
	return ok && e.reason != messages.ReasonNone && r == e.reason
}

// As gives the reason the error wrapped on its node.
func (e *remoteErr) As(target any) bool {
	if r, ok := target.(*messages.Reason); ok && e.reason != messages.ReasonNone {
		*r = e.reason
		return true
	}
	return false
}

// statusOut encodes a status for the proxy.
func statusOut(id uint64, s *messages.Status) *nodepb.Status {
	out := &nodepb.Status{Id: id, State: int32(s.State), OsPid: int64(s.OSPid), ExitCode: int32(s.ExitCode),
		Signal: int32(s.Signal), Killed: s.Killed, Reason: int32(s.Reason), UptimeNs: int64(s.Uptime),
		LogsDropped: s.LogsDropped, CpuNs: int64(s.CPU), CpuPercent: s.CPUPercent, Memory: s.Memory,
		MemoryFigure: s.MemoryFigure, PingRttNs: int64(s.PingRTT), Cgroup: s.Cgroup}
	if !s.StartedAt.IsZero() {
		out.StartedAtUnixNano = s.StartedAt.UnixNano()
	}
	if s.LastError != nil {
		out.LastError = s.LastError.Error()
	}
	return out
}

// statusIn decodes a status from a host.
func statusIn(s *nodepb.Status) *messages.Status {
	out := &messages.Status{State: messages.State(s.State), OSPid: int(s.OsPid), ExitCode: int(s.ExitCode),
		Signal: syscall.Signal(s.Signal), Killed: s.Killed, Reason: messages.Reason(s.Reason),
		Uptime: time.Duration(s.UptimeNs), LogsDropped: s.LogsDropped, CPU: time.Duration(s.CpuNs),
		CPUPercent: s.CpuPercent, Memory: s.Memory, MemoryFigure: s.MemoryFigure,
		PingRTT: time.Duration(s.PingRttNs), Cgroup: s.Cgroup}
	if s.StartedAtUnixNano != 0 {
		out.StartedAt = time.Unix(0, s.StartedAtUnixNano)
	}
	if s.LastError != "" {
		out.LastError = errors.New(s.LastError)
	}
	return out
}

// eventOut encodes a process actor's event for its proxy; nil for one that does not
// cross (a strategy's: the host's strategy never restarts).
func eventOut(ev any) *nodepb.Event {
	switch e := ev.(type) {
	case *messages.StateChanged:
		return &nodepb.Event{OsPid: int64(e.OSPid), Kind: &nodepb.Event_StateChanged{StateChanged: &nodepb.StateChanged{From: int32(e.From), To: int32(e.To)}}}
	case *messages.HighPing:
		return &nodepb.Event{OsPid: int64(e.OSPid), Kind: &nodepb.Event_HighPing{HighPing: &nodepb.HighPing{RttNs: int64(e.RTT), ThresholdNs: int64(e.Threshold)}}}
	case *messages.MemoryWarning:
		return &nodepb.Event{OsPid: int64(e.OSPid), Kind: &nodepb.Event_MemoryWarning{MemoryWarning: &nodepb.MemoryWarning{Bytes: e.Bytes, Figure: e.Figure, Growth: e.Growth}}}
	case *messages.MemoryLimitExceeded:
		return &nodepb.Event{OsPid: int64(e.OSPid), Kind: &nodepb.Event_MemoryLimit{MemoryLimit: &nodepb.MemoryLimitExceeded{Bytes: e.Bytes, Figure: e.Figure, Limit: e.Limit}}}
	case *messages.CPUWarning:
		return &nodepb.Event{OsPid: int64(e.OSPid), Kind: &nodepb.Event_CpuWarning{CpuWarning: &nodepb.CPUWarning{Percent: e.Percent, Warn: e.Warn, AboveNs: int64(e.Above), CpuNs: int64(e.CPU)}}}
	case *messages.ChildMessage:
		return &nodepb.Event{OsPid: int64(e.OSPid), Kind: &nodepb.Event_ChildMessage{ChildMessage: &nodepb.ChildMessage{Kind: e.Kind, Body: e.Body}}}
	case *messages.Exited:
		x := &nodepb.Exited{ExitCode: int32(e.ExitCode), Signal: int32(e.Signal), Killed: e.Killed, Reason: int32(e.Reason),
			UptimeNs: int64(e.Uptime), LogsDropped: e.LogsDropped, Stderr: e.Stderr}
		if e.Err != nil {
			x.Err = e.Err.Error()
		}
		return &nodepb.Event{OsPid: int64(e.OSPid), Kind: &nodepb.Event_Exited{Exited: x}}
	}
	return nil
}

// eventIn decodes a host's event as the messages type of the same name, about pid.
func eventIn(pid *actor.PID, ev *nodepb.Event) messages.Event {
	os := int(ev.OsPid)
	switch k := ev.Kind.(type) {
	case *nodepb.Event_StateChanged:
		return &messages.StateChanged{PID: pid, OSPid: os, From: messages.State(k.StateChanged.From), To: messages.State(k.StateChanged.To)}
	case *nodepb.Event_HighPing:
		return &messages.HighPing{PID: pid, OSPid: os, RTT: time.Duration(k.HighPing.RttNs), Threshold: time.Duration(k.HighPing.ThresholdNs)}
	case *nodepb.Event_MemoryWarning:
		m := k.MemoryWarning
		return &messages.MemoryWarning{PID: pid, OSPid: os, Bytes: m.Bytes, Figure: m.Figure, Growth: m.Growth}
	case *nodepb.Event_MemoryLimit:
		m := k.MemoryLimit
		return &messages.MemoryLimitExceeded{PID: pid, OSPid: os, Bytes: m.Bytes, Figure: m.Figure, Limit: m.Limit}
	case *nodepb.Event_CpuWarning:
		c := k.CpuWarning
		return &messages.CPUWarning{PID: pid, OSPid: os, Percent: c.Percent, Warn: c.Warn, Above: time.Duration(c.AboveNs), CPU: time.Duration(c.CpuNs)}
	case *nodepb.Event_ChildMessage:
		return &messages.ChildMessage{PID: pid, OSPid: os, Kind: k.ChildMessage.Kind, Body: k.ChildMessage.Body}
	case *nodepb.Event_Exited:
		x := k.Exited
		e := &messages.Exited{PID: pid, OSPid: os, ExitCode: int(x.ExitCode), Signal: syscall.Signal(x.Signal), Killed: x.Killed,
			Reason: messages.Reason(x.Reason), Uptime: time.Duration(x.UptimeNs), LogsDropped: x.LogsDropped, Stderr: x.Stderr}
		if x.Err != "" {
			e.Err = errors.New(x.Err)
		}
		return e
	}
	return nil
}
