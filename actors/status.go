package actors

import (
	"fmt"
	"time"

	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/monitor"
)

// statusNow is the process's Status, with its stderr tail if withStderr.
func (p *process) statusNow(withStderr bool) *messages.Status {
	s := &messages.Status{State: p.state, Restarts: p.restarts, Reason: p.reason, LastError: p.lastError}
	if !p.finished {
		s.Reason = p.previous.reason // the current process has not ended: the last one's
	}
	if s.LastError == nil {
		s.LastError = p.previous.lastError
	}
	s.MemoryWarn, s.MemoryLimit = mb(p.cfg.MemoryWarnMB), mb(p.cfg.MemoryLimitMB)
	s.Command = commandLine(p.cfg.Launcher)
	if p.stderr != nil && withStderr {
		s.Stderr = p.stderr.String()
	}
	if p.logStats != nil {
		s.LogsDropped = p.logStats.lost(0)
	}
	if p.proc != nil {
		s.OSPid, s.StartedAt, s.Adopted = p.proc.Pid(), p.startedAt, p.adopted
		s.ExitCode, s.Signal = p.status.Code, p.status.Signal
		s.Killed = p.exited && p.killedIt()
		if p.state != messages.Dead {
			s.Uptime = time.Since(p.startedAt)
		}
		p.figures(s)
	}
	return s
}

// figures adds the process's CPU and memory to s: the monitor's last sample, and the
// CPU time: the cgroup's read now; without a cgroup, the monitor's last sample while one
// runs, else /proc's read now while the process runs, else its exit's.
func (p *process) figures(s *messages.Status) {
	if p.pongs != nil {
		s.PingRTT = time.Duration(p.pongs.rtt.Load())
	}
	r := p.reading.Load()
	if r != nil {
		s.Memory, s.MemoryFigure, s.CPUPercent = r.memory.Bytes, string(r.memory.Figure), r.cpuPercent
		s.CPUSampled = r.hasCPU
	}
	s.CPU = p.status.CPU
	if cg := p.proc.Cgroup(); cg != nil {
		s.Cgroup = cg.Dir()
		if st, err := cg.Stats(); err == nil {
			s.CPU, s.CPUPressure, s.MemoryPressure = st.CPU, st.CPUPressure, st.MemoryPressure
			if s.Memory == 0 && st.HasMemory {
				s.Memory, s.MemoryFigure = st.Memory, string(monitor.Cgroup)
			}
		}
	} else if !p.exited && r != nil && r.hasCPU {
		s.CPU = r.cpu
	} else if !p.exited {
		if c, err := monitor.NewCPUSampler(p.proc.Pid(), ""); err == nil {
			s.CPU, _ = c.Sample()
			c.Close()
		}
	}
}

// commandLine is what a launcher says it starts (*launch.Command: the program and its
// arguments), "" when it says nothing.
func commandLine(l launch.Launcher) string {
	if s, ok := l.(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}
