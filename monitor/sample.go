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

// Sampler measures one process, and optionally its descendants. A sampler of one process
// reads its held statm descriptor and smaps_rollup and never makes a gopsutil handle
// (making one reads /proc/<pid>/stat and costs four times a sample: a start of every
// child paid it); a sampler of a tree makes its handle at the first sample and keeps it.
// It is not safe for concurrent use.
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
	statm, err := os.Open("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return nil, fmt.Errorf("%w: %d: %v", ErrGone, pid, err)
	}
	return &Sampler{pid: pid, tree: tree, statm: statm}, nil
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
		return s.pss([]int{s.pid}, nil, rss)
	}
	if s.root == nil {
		p, err := process.NewProcess(int32(s.pid))
		if err != nil {
			return Sample{}, fmt.Errorf("%w: %d: %v", ErrGone, s.pid, err)
		}
		s.root = p
	}
	procs := append([]*process.Process{s.root}, descendants(s.root)...)
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = int(p.Pid)
	}
	return s.pss(pids, procs, 0)
}

// pss sums PSS over pids (the root first); where smaps_rollup cannot be read it falls
// back to RSS for good: rss, the root's alone, or else each of procs'.
func (s *Sampler) pss(pids []int, procs []*process.Process, rss uint64) (Sample, error) {
	out := Sample{Figure: PSS, At: time.Now()}
	if !s.noPSS {
		total, n, err := sumPSS(pids)
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
	if procs == nil {
		out.Bytes, out.Processes = rss, 1
		return out, nil
	}
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

// sumPSS sums Pss over pids. The root's absence is ErrGone; a descendant's is skipped.
func sumPSS(pids []int) (total uint64, n int, err error) {
	for i, pid := range pids {
		kb, err := readPSS(pid)
		if err != nil {
			if i == 0 {
				if _, serr := os.Stat("/proc/" + strconv.Itoa(pid)); serr != nil {
					return 0, 0, fmt.Errorf("%w: %d", ErrGone, pid)
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
