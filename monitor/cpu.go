package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// CPUSampler reads a process's CPU time, user and system: from its cgroup's cpu.stat
// when it has one (the process and all its descendants, the dead ones included), from
// /proc/<pid>/stat otherwise (the process, and the children it has waited for). It holds
// the file open between samples. It is not safe for concurrent use.
type CPUSampler struct {
	pid    int
	f      *os.File
	cgroup bool
}

// NewCPUSampler returns a sampler for pid, or for the cgroup at cgroupDir when it is not
// empty.
func NewCPUSampler(pid int, cgroupDir string) (*CPUSampler, error) {
	path, cgroup := "/proc/"+strconv.Itoa(pid)+"/stat", false
	if cgroupDir != "" {
		path, cgroup = filepath.Join(cgroupDir, "cpu.stat"), true
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %d: %v", ErrGone, pid, err)
	}
	return &CPUSampler{pid: pid, f: f, cgroup: cgroup}, nil
}

// Close releases the sampler's descriptor.
func (s *CPUSampler) Close() error { return s.f.Close() }

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture.
const clockTick = 10 * time.Millisecond

// Sample returns the CPU time used so far. A process gone is [ErrGone].
func (s *CPUSampler) Sample() (time.Duration, error) {
	var buf [1024]byte
	n, err := s.f.ReadAt(buf[:], 0)
	if n == 0 {
		return 0, fmt.Errorf("%w: %d: %v", ErrGone, s.pid, err)
	}
	if s.cgroup {
		return parseCPUStat(buf[:n])
	}
	return parseProcStat(buf[:n])
}

// parseCPUStat reads usage_usec of a cgroup's cpu.stat.
func parseCPUStat(b []byte) (time.Duration, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("usage_usec ")); ok {
			us, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, errors.New("cpu.stat has no usage_usec")
}

// parseProcStat sums utime, stime, cutime and cstime of /proc/<pid>/stat: the 12th to
// 15th fields after the command's closing parenthesis. It allocates nothing.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	b = b[i+1:]
	var ticks int64
	for field := 0; field < 15; field++ {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		end := bytes.IndexByte(b, ' ')
		if end < 0 {
			end = len(b)
		}
		if field >= 11 { // utime stime cutime cstime
			v, err := strconv.ParseInt(string(bytes.TrimSpace(b[:end])), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("malformed stat: %v", err)
			}
			ticks += v
		}
		if end == len(b) && field < 14 {
			return 0, errors.New("malformed stat")
		}
		b = b[end:]
	}
	return time.Duration(ticks) * clockTick, nil
}

// DefaultCPUWarnCooldown is the least time between two CPU warnings of a process.
const DefaultCPUWarnCooldown = 120 * time.Second

// CPUPolicy decides, sample by sample, whether a process's CPU use is worth a warning:
// above WarnPercent (of one core; 250 is two and a half cores) for at least Period. A
// zero WarnPercent turns it off.
type CPUPolicy struct {
	WarnPercent float64
	// Period is how long the use must stay above WarnPercent; 0 means one interval
	// between samples.
	Period time.Duration
	// Cooldown is the least time between two warnings ([DefaultCPUWarnCooldown] when 0).
	Cooldown time.Duration
}

// CPUState is what the policy remembers between samples of one process. Its zero value
// is ready to use.
type CPUState struct {
	// Percent is the use over the last interval, in percent of one core (after two
	// samples).
	Percent    float64
	CPU        time.Duration // the CPU time at the last sample
	At         time.Time     // when the last sample was taken
	AboveSince time.Time     // zero while the use is at or below the threshold
	LastWarnAt time.Time
}

// Decide looks at cpu, the CPU time used so far, taken at now; it updates st and says
// whether to warn (never OverLimit).
func (p CPUPolicy) Decide(st *CPUState, cpu time.Duration, now time.Time) Decision {
	first := st.At.IsZero()
	if !first && now.After(st.At) {
		st.Percent = 100 * float64(cpu-st.CPU) / float64(now.Sub(st.At))
	}
	prev := st.At
	st.CPU, st.At = cpu, now
	if first || p.WarnPercent <= 0 {
		return Quiet
	}
	if st.Percent <= p.WarnPercent {
		st.AboveSince = time.Time{}
		return Quiet
	}
	if st.AboveSince.IsZero() {
		st.AboveSince = prev // above over the whole interval that just ended
	}
	if now.Sub(st.AboveSince) < p.Period {
		return Quiet
	}
	cooldown := p.Cooldown
	if cooldown <= 0 {
		cooldown = DefaultCPUWarnCooldown
	}
	if !st.LastWarnAt.IsZero() && now.Sub(st.LastWarnAt) < cooldown {
		return Quiet
	}
	st.LastWarnAt = now
	return Warn
}
