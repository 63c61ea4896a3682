package httpstatus

import (
	"math"
	"sync"
	"time"

	"github.com/procsup/procsup/messages"
)

// historyWindow is how far back a process's chart goes.
const historyWindow = time.Hour

// recentMinutes is the span of the attention list's counts: restarts and the worst ping
// of the last recentMinutes minutes.
const recentMinutes = 10

// point is one sample of a process for its chart, in small units so that an hour of them
// stays within a couple of KB: seconds since the history began, memory in KiB (0: not
// measured), and its CPU since the sample before in tenths of a percent of one core
// (math.MaxUint16: not measured: its first sample, or a new process).
type point struct {
	at     uint32
	memKiB uint32
	cpu    uint16
}

const noCPU = math.MaxUint16

// minuteCounts are a process's restarts and worst ping round trip, by minute, for the
// last recentMinutes minutes.
type minuteCounts struct {
	minute   [recentMinutes]uint32 // which minute (since the history began) each slot holds
	restarts [recentMinutes]uint16
	worstUs  [recentMinutes]uint32 // the worst ping of that minute, in µs
}

// procHistory is what the history keeps of one process actor.
type procHistory struct {
	points []point // a ring of up to capPoints, points[head] the oldest once full
	head   int
	recent minuteCounts
	seen   bool // in the last snapshot
	// The last sample's process (its pid and start) and CPU time: the next sample's CPU
	// share is measured against them.
	pid     int
	started float64
	cpu     float64
}

// history keeps, per process actor below the root, its memory and CPU over the last hour
// (one point per sample) and its recent restarts and worst pings.
type history struct {
	began     time.Time
	capPoints int

	mu    sync.Mutex
	procs map[string]*procHistory
}

func newHistory(interval time.Duration) *history {
	return &history{began: time.Now(), capPoints: max(2, int(historyWindow/interval)), procs: map[string]*procHistory{}}
}

func (h *history) minute(t time.Time) uint32 { return uint32(t.Sub(h.began) / time.Minute) }

// of returns the process's history, made if new; h.mu is held.
func (h *history) of(id string) *procHistory {
	p := h.procs[id]
	if p == nil {
		p = &procHistory{}
		h.procs[id] = p
	}
	return p
}

// bucket returns the slot of the minute now in c, emptied if it held an older minute.
func (c *minuteCounts) bucket(minute uint32) int {
	i := int(minute % recentMinutes)
	if c.minute[i] != minute {
		c.minute[i], c.restarts[i], c.worstUs[i] = minute, 0, 0
	}
	return i
}

// add adds a snapshot's processes: a point each, their pings to the minute's worst;
// processes no longer in it are forgotten.
func (h *history) add(snap *messages.Snapshot, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.procs {
		p.seen = false
	}
	at, minute := uint32(now.Sub(h.began)/time.Second), h.minute(now)
	snap.Walk(func(s *messages.Snapshot) {
		v := s.Process
		if v == nil {
			return
		}
		p := h.of(s.ID)
		p.seen = true
		pt := point{at: at, memKiB: uint32(min(v.MemoryBytes>>10, math.MaxUint32)), cpu: noCPU}
		if last := p.last(); last != nil && p.pid == v.OSPid && p.started == v.StartedAt && v.OSPid != 0 && at > last.at {
			pt.cpu = uint16(math.Round(min(max(v.CPU-p.cpu, 0)/float64(at-last.at)*1000, noCPU-1)))
		}
		p.pid, p.started, p.cpu = v.OSPid, v.StartedAt, v.CPU
		if len(p.points) < h.capPoints {
			p.points = append(p.points, pt)
		} else {
			p.points[p.head] = pt
			p.head = (p.head + 1) % len(p.points)
		}
		if v.PingRTT > 0 {
			i := p.recent.bucket(minute)
			p.recent.worstUs[i] = max(p.recent.worstUs[i], uint32(min(v.PingRTT*1e6, math.MaxUint32)))
		}
	})
	for id, p := range h.procs {
		if !p.seen {
			delete(h.procs, id)
		}
	}
}

// last is the newest point, nil when there is none.
func (p *procHistory) last() *point {
	if len(p.points) == 0 {
		return nil
	}
	return &p.points[(p.head+len(p.points)-1)%len(p.points)]
}

// event counts a restart or a high ping as it happens.
func (h *history) event(e *Event, ev messages.Event) {
	var rttUs uint32
	switch m := ev.(type) {
	case *messages.Restarting:
	case *messages.HighPing:
		rttUs = uint32(min(m.RTT.Microseconds(), math.MaxUint32))
	default:
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.of(e.Actor)
	p.seen = true
	i := p.recent.bucket(h.minute(e.Time))
	if rttUs == 0 {
		p.recent.restarts[i]++
	} else {
		p.recent.worstUs[i] = max(p.recent.worstUs[i], rttUs)
	}
}

// recent are a process's restarts and worst ping over the last recentMinutes minutes,
// and its CPU share between the last two samples (negative: not measured).
type recent struct {
	Restarts  int
	WorstPing time.Duration
	CPU       float64
}

// recentOf returns every process's recent counts, by actor id.
func (h *history) recentOf(now time.Time) map[string]recent {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.minute(now)
	out := make(map[string]recent, len(h.procs))
	for id, p := range h.procs {
		r := recent{CPU: -1}
		if last := p.last(); last != nil && last.cpu != noCPU {
			r.CPU = float64(last.cpu) / 10
		}
		for i := range recentMinutes {
			if p.recent.minute[i]+recentMinutes > m && (p.recent.restarts[i] > 0 || p.recent.worstUs[i] > 0) {
				r.Restarts += int(p.recent.restarts[i])
				r.WorstPing = max(r.WorstPing, time.Duration(p.recent.worstUs[i])*time.Microsecond)
			}
		}
		out[id] = r
	}
	return out
}

// sample is one point of a process's history: when, its memory in bytes and its CPU in
// percent of one core; Memory 0 and CPU -1 where they were not measured.
type sample struct {
	Time   time.Time
	Memory uint64
	CPU    float64
}

// samples returns a process's points, the oldest first.
func (h *history) samples(id string) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.procs[id]
	if p == nil {
		return nil
	}
	out := make([]sample, 0, len(p.points))
	for i := range p.points {
		pt := p.points[(p.head+i)%len(p.points)]
		s := sample{Time: h.began.Add(time.Duration(pt.at) * time.Second), Memory: uint64(pt.memKiB) << 10, CPU: -1}
		if pt.cpu != noCPU {
			s.CPU = float64(pt.cpu) / 10
		}
		out = append(out, s)
	}
	return out
}
