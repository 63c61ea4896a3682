package monitor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/shirou/gopsutil/v3/process"
)

// Figure names what a [Sample] measured.
type Figure string

const (
	// PSS is the proportional set size from /proc/<pid>/smaps_rollup: shared pages are
	// divided among the processes sharing them, so it does not over-count.
	PSS Figure = "pss"
	// RSS is the resident set size, through gopsutil: shared pages count in full.
	RSS Figure = "rss"
	// Cgroup is a cgroup's memory.current: the process and all its descendants, the
	// page cache they caused included.
	Cgroup Figure = "cgroup"
)

// SampleCgroup reads memory.current of the cgroup at dir. ok is false where the file is
// missing (the memory controller is off for the cgroup).
func SampleCgroup(dir string) (s Sample, ok bool) {
	b, err := os.ReadFile(dir + "/memory.current")
	if err != nil {
		return Sample{}, false
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return Sample{}, false
	}
	return Sample{Bytes: v, Figure: Cgroup, Processes: 1, At: time.Now()}, true
}

// ErrGone is returned when the process vanished before or during a sample.
var ErrGone = errors.New("procsup/monitor: process is gone")

// Sample is one memory measurement.
type Sample struct {
	Bytes     uint64    // the figure, summed over Processes
	Figure    Figure    // what Bytes is
	Processes int       // how many processes were measured (more than 1 with Tree)
	At        time.Time // when it was taken
}

// MB returns Bytes in mebibytes.
func (s Sample) MB() float64 { return float64(s.Bytes) / (1 << 20) }

// String implements fmt.Stringer.
func (s Sample) String() string {
	return fmt.Sprintf("%.1f MB %s over %d process(es)", s.MB(), s.Figure, s.Processes)
}

// Sampler measures one process, and optionally its descendants. It keeps the gopsutil
// process handle between samples (creating it costs four times a sample). It is not safe
// for concurrent use.
type Sampler struct {
	// PSSAbove, when non-zero, skips the costly PSS figure while RSS is at or below it:
	// PSS never exceeds RSS, so a policy whose lowest threshold is PSSAbove decides the
	// same from the cheap figure. A memory monitor sets it to that threshold.
	PSSAbove uint64

	pid   int
	tree  bool
	root  *process.Process
	statm *os.File // held open: a pread of it costs a few microseconds
	noPSS bool     // smaps_rollup was unreadable once: use RSS from then on
}

// NewSampler returns a sampler for pid; with tree, samples sum the process and all its
// descendants.
func NewSampler(pid int, tree bool) (*Sampler, error) {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return nil, fmt.Errorf("%w: %d: %v", ErrGone, pid, err)
	}
	statm, err := os.Open("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return nil, fmt.Errorf("%w: %d: %v", ErrGone, pid, err)
	}
	return &Sampler{pid: pid, tree: tree, root: p, statm: statm}, nil
}

// Close releases the sampler's descriptor.
func (s *Sampler) Close() error { return s.statm.Close() }

var pageSize = uint64(os.Getpagesize())

// rss reads the process's resident set from its held statm descriptor.
func (s *Sampler) rss() (uint64, error) {
	var buf [128]byte
	n, err := s.statm.ReadAt(buf[:], 0)
	if n == 0 {
		return 0, fmt.Errorf("%w: %d: %v", ErrGone, s.pid, err)
	}
	f := bytes.Fields(buf[:n])
	if len(f) < 2 {
		return 0, fmt.Errorf("statm of %d: %q", s.pid, buf[:n])
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("statm of %d: %v", s.pid, err)
	}
	return pages * pageSize, nil
}

// Sample measures now. It prefers PSS where the kernel gives it (Linux 4.14+, and
// readable by this user) and falls back to RSS; all processes of one sample use the same
// figure. A vanished process is [ErrGone], never a panic.
func (s *Sampler) Sample() (Sample, error) {
	if !s.tree {
		rss, err := s.rss()
		if err != nil {
			return Sample{}, err
		}
		if s.noPSS || rss <= s.PSSAbove {
			return Sample{Bytes: rss, Figure: RSS, Processes: 1, At: time.Now()}, nil
		}
	}
	procs := []*process.Process{s.root}
	if s.tree {
		procs = append(procs, descendants(s.root)...)
	}
	out := Sample{Figure: PSS, At: time.Now()}
	if !s.noPSS {
		total, n, err := sumPSS(procs)
		if err == nil {
			out.Bytes, out.Processes = total, n
			return out, nil
		}
		if errors.Is(err, ErrGone) {
			return Sample{}, err
		}
		s.noPSS = true
	}
	out.Figure = RSS
	for i, p := range procs {
		mi, err := p.MemoryInfo()
		if err != nil {
			if i == 0 {
				return Sample{}, fmt.Errorf("%w: %d: %v", ErrGone, s.pid, err)
			}
			continue // a descendant that just exited
		}
		out.Bytes += mi.RSS
		out.Processes++
	}
	return out, nil
}

func descendants(p *process.Process) []*process.Process {
	var out []*process.Process
	kids, _ := p.Children()
	for _, k := range kids {
		out = append(out, k)
		out = append(out, descendants(k)...)
	}
	return out
}

// sumPSS sums Pss over procs. The root's absence is ErrGone; a descendant's is skipped.
func sumPSS(procs []*process.Process) (total uint64, n int, err error) {
	for i, p := range procs {
		kb, err := readPSS(int(p.Pid))
		if err != nil {
			if i == 0 {
				if _, serr := os.Stat("/proc/" + strconv.Itoa(int(p.Pid))); serr != nil {
					return 0, 0, fmt.Errorf("%w: %d", ErrGone, p.Pid)
				}
				return 0, 0, err
			}
			continue
		}
		total += kb << 10
		n++
	}
	return total, n, nil
}

func readPSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("Pss:")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseUint(string(f[0]), 10, 64)
		}
	}
	return 0, errors.New("no Pss line in smaps_rollup")
}
