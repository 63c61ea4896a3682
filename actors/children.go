package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/messages/wire/wireslog"
	"github.com/procsup/procsup/monitor"
)

// The process actor's children, one job each. Goroutines that block (reads, the wait
// for the exit) only Send to the process actor through the system's root context; they
// never touch an actor's Context, and they end when their file is closed.

// socketActor is what reader and logReader share: the process actor they report to, the
// socket they read, and the goroutine that reads it, which ends when the socket is closed
// as the actor stops.
type socketActor struct {
	system *actor.ActorSystem
	owner  *actor.PID
	ospid  int
	conn   net.Conn
	r      *wire.Reader
	log    *slog.Logger
	ended  chan struct{}
}

func (s *socketActor) receive(ctx actor.Context, loop func()) {
	switch ctx.Message().(type) {
	case *actor.Started:
		s.ended = make(chan struct{})
		go func() {
			defer close(s.ended)
			loop()
		}()
	case *actor.Stopping, *actor.Restarting:
		s.conn.Close()
		<-s.ended
	}
}

// reader reads control frames and hands them to the process actor.
type reader struct {
	socketActor
	pending *pending
	pongs   *pongs
	done    chan struct{} // closed at the end, before readFailed is sent
	heard   *heard
}

func (a *reader) Receive(ctx actor.Context) { a.receive(ctx, a.loop) }

func (a *reader) loop() {
	for {
		m, err := a.r.Read()
		if errors.Is(err, wire.ErrUnknownType) {
			a.log.Warn("ignoring a message of unknown type from the child", "error", err)
			continue
		}
		if err != nil {
			close(a.done)
			a.system.Root.Send(a.owner, &readFailed{about: about{a.ospid}, err: err})
			return
		}
		switch m := m.(type) {
		case *wire.Exiting:
			a.heard.lastWord.Store(m)
		case *wire.InitializeResponse:
			if m.Error == "" {
				a.heard.initialized.Store(true)
			} else {
				a.heard.initError.Store(&m.Error)
			}
		case *wire.Reply:
			a.pending.answer(m) // straight to whoever waits, not through the actor
			continue
		case *wire.PongResponse:
			if a.pongs.armed.Load() {
				a.pongs.got(m)
				continue
			}
		}
		a.system.Root.Send(a.owner, &frameIn{about: about{a.ospid}, m: m})
	}
}

// heard is what the reader read that the end must know, whichever comes first to the
// process actor, the frame or the exit: the child's last word, and whether it
// initialized (or why it did not).
type heard struct {
	lastWord    atomic.Pointer[wire.Exiting]
	initialized atomic.Bool
	initError   atomic.Pointer[string] // the error of a failed initialization
}

// logReader reads the child's log records to the end and re-emits each into the
// parent's slog logger, with the child's pid and the actor's id.
type logReader struct {
	socketActor
	rate  float64       // records per second re-emitted; 0 is no cap
	done  chan struct{} // closed at end of stream, shared with the process actor
	stats *logStats
}

// logStats counts what became of the child's log records, for Status and Exited: written
// by the log reader's goroutine, read by the process actor.
type logStats struct {
	lastSeq     *atomic.Uint64 // the highest record number received
	gapDropped  *atomic.Uint64 // numbers skipped: dropped by the child, or unreadable here
	rateDropped *atomic.Uint64 // over LogRate
	own         [3]atomic.Uint64
}

// newLogStats returns counts kept in the logStats itself, or, for a process a keeper
// holds, in counters shared with the keeper (launch.Marks.Counter): the counts of the
// program before carry over to the one that adopts the process.
func newLogStats(shared *launch.Marks) *logStats {
	s := &logStats{}
	s.lastSeq, s.gapDropped, s.rateDropped = &s.own[0], &s.own[1], &s.own[2]
	if shared != nil {
		s.lastSeq, s.gapDropped, s.rateDropped = shared.Counter(0), shared.Counter(1), shared.Counter(2)
	}
	return s
}

// received counts a record; seq is its number (0 from a child that does not number its
// records: then dropped, its count of records dropped before it, is all there is).
func (s *logStats) received(seq, dropped uint64) {
	if seq == 0 {
		s.gapDropped.Add(dropped)
		return
	}
	if last := s.lastSeq.Load(); seq > last {
		s.gapDropped.Add(seq - last - 1)
		s.lastSeq.Store(seq)
	}
}

// lost is how many records did not reach the logger, given the child's total (0 when
// unknown).
func (s *logStats) lost(total uint64) uint64 {
	n := s.gapDropped.Load() + s.rateDropped.Load()
	if last := s.lastSeq.Load(); total > last {
		n += total - last // never arrived
	}
	return n
}

// reservedLogKeys are the keys the parent adds to a child's records, and slog's own: a
// child's top-level attribute of the same name arrives as "child.<key>".
var reservedLogKeys = map[string]bool{
	"pid": true, "actor": true, "source": true, "logger": true, "child_source": true,
	"dropped_before": true, slog.TimeKey: true, slog.LevelKey: true, slog.MessageKey: true,
}

func (a *logReader) Receive(ctx actor.Context) { a.receive(ctx, a.loop) }

func (a *logReader) loop() {
	h := a.log.Handler()
	bucket := tokenBucket{rate: a.rate, tokens: a.rate, last: time.Now()}
	// Records over the rate are counted at once; the warning that says so comes at most
	// once a second (and at the end), or a flood would make the parent's log a flood of
	// warnings.
	var unreported uint64
	var lastWarning time.Time
	reportDropped := func(now bool) {
		if unreported > 0 && (now || time.Since(lastWarning) >= time.Second) {
			a.log.Warn("dropped child log records over the rate limit", "dropped", unreported, "rate_per_second", a.rate)
			unreported, lastWarning = 0, time.Now()
		}
	}
	warned := false
	for {
		m, err := a.r.Read()
		if err != nil && (errors.Is(err, wire.ErrUnknownType) || isBadBody(err)) {
			// The stream is still in step: skip the frame (a numbered record's gap counts it).
			if !warned {
				a.log.Warn("skipping unreadable frames on the child's log socket", "error", err)
				warned = true
			}
			continue
		}
		if err != nil {
			reportDropped(true)
			// done is closed before logsDrained is sent: whatever the process actor
			// handles after logsDrained (the exit, above all) finds the logs drained.
			close(a.done)
			if !errors.Is(err, wire.ErrClosed) && !errors.Is(err, net.ErrClosed) {
				a.system.Root.Send(a.owner, &readFailed{about: about{a.ospid}, logs: true, err: err})
			}
			a.system.Root.Send(a.owner, &logsDrained{about{a.ospid}})
			return
		}
		rec, ok := m.(*wire.LogRecord)
		if !ok {
			if !warned {
				a.log.Warn("skipping a message that is not a log record on the child's log socket", "type", m.WireType())
				warned = true
			}
			continue
		}
		a.stats.received(rec.Seq, rec.Dropped)
		level := slog.Level(rec.Level)
		if !h.Enabled(context.Background(), level) {
			continue
		}
		if !bucket.take(time.Now()) {
			a.stats.rateDropped.Add(1)
			unreported++
			continue
		}
		reportDropped(false)
		r := slog.NewRecord(time.Unix(0, rec.Time), level, rec.Message, 0)
		r.AddAttrs(slog.String("source", "child"))
		if rec.Logger != "" {
			r.AddAttrs(slog.String("logger", rec.Logger))
		}
		if rec.Source != nil {
			r.AddAttrs(slog.String("child_source", rec.Source.File+":"+strconv.Itoa(rec.Source.Line)))
		}
		if rec.Dropped > 0 {
			r.AddAttrs(slog.Uint64("dropped_before", rec.Dropped))
		}
		for _, at := range rec.Attrs {
			if reservedLogKeys[at.Key] {
				at.Key = "child." + at.Key
			}
			r.AddAttrs(wireslog.ToSlog(at))
		}
		h.Handle(context.Background(), r)
	}
}

// isBadBody reports whether err is a frame whose body did not decode, the frame itself
// read whole (not one cut short, after which the stream is out of step).
func isBadBody(err error) bool {
	return errors.Is(err, wire.ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// tokenBucket allows rate events a second with a burst of rate; a zero rate allows all.
type tokenBucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// joiner waits for the process to exit (a pidfd in the netpoller: no thread held) and
// reports the exit code and signal.
type joiner struct {
	system *actor.ActorSystem
	owner  *actor.PID
	proc   *launch.Process
}

func (a *joiner) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); ok {
		system, owner, ospid := a.system, a.owner, a.proc.Pid()
		a.proc.AfterExit(func(st launch.ExitStatus) {
			system.Root.Send(owner, &processExited{about: about{ospid}, status: st})
		})
	}
}

// pinger sends a ping every interval, measures each round trip on the parent's clock and
// reports high pings and a silence longer than the timeout.
type pinger struct {
	system   *actor.ActorSystem
	owner    *actor.PID
	w        *wire.Writer
	interval time.Duration
	timeout  time.Duration
	pongs    *pongs
	reported bool
	ticks    repeat
}

// pongs is what the reader learns from pongs, shared with the pinger: each pong is
// measured where it is read, without a message through two mailboxes; only a high ping
// becomes a message.
type pongs struct {
	system    *actor.ActorSystem
	owner     *actor.PID
	ospid     int // the process the pongs come from
	threshold time.Duration
	last      atomic.Int64 // monoNow of the last pong (or of the start)
	rtt       atomic.Int64 // the last pong's round trip
	metrics   *instruments
	name      string      // the metrics' label
	armed     atomic.Bool // pings are out: before, a pong is a protocol error
}

func newPongs(system *actor.ActorSystem, owner *actor.PID, ospid int, threshold time.Duration) *pongs {
	p := &pongs{system: system, owner: owner, ospid: ospid, threshold: threshold}
	p.last.Store(monoNow())
	return p
}

// got records a pong, on the reader's goroutine.
func (p *pongs) got(m *wire.PongResponse) {
	now := monoNow()
	p.last.Store(now)
	rtt := time.Duration(now - m.SentAt)
	p.rtt.Store(int64(rtt))
	p.metrics.pong(p.name, rtt)
	if p.threshold > 0 && rtt > p.threshold {
		p.system.Root.Send(p.owner, &highPing{about: about{p.ospid}, rtt: rtt})
	}
}

// silence is how long no pong has come.
func (p *pongs) silence() time.Duration { return time.Duration(monoNow() - p.last.Load()) }

func (a *pinger) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		// The first ping at a random point of the interval spreads many children's pings
		// over the clock's grid (clock.go), where they are sent in batches.
		a.ticks.first(a.system, rand.N(a.interval)+time.Millisecond, a.interval, ctx.Self(), &pingTick{})
	case *pingTick:
		if a.timeout > 0 && !a.reported {
			if silence := a.pongs.silence(); silence > a.timeout {
				a.reported = true
				ctx.Send(a.owner, &unresponsive{about: about{a.pongs.ospid}, silence: silence})
				return
			}
		}
		if err := a.w.Write(&wire.PingRequest{SentAt: monoNow()}); errors.Is(err, os.ErrDeadlineExceeded) {
			ctx.Send(a.owner, &childNotReading{about{a.pongs.ospid}})
			return
		}
		a.ticks.next(a.system, a.interval, ctx.Self(), &pingTick{})
	case *actor.Stopping, *actor.Restarting:
		a.ticks.stop()
	}
}

// reading is the monitor's last sample of a process, for Status and the metrics.
type reading struct {
	memory     monitor.Sample
	cpu        time.Duration
	cpuPercent float64
	hasCPU     bool // cpu was sampled
}

// monitorActor samples the process's memory and CPU on the batched clock and applies
// the memory warn/limit policy and the CPU warn policy.
type monitorActor struct {
	system    *actor.ActorSystem
	owner     *actor.PID
	ospid     int
	tree      bool
	cgroup    string // the process's cgroup directory, or ""
	interval  time.Duration
	memPolicy monitor.Policy // off when both levels are 0
	cpuPolicy monitor.CPUPolicy
	log       *slog.Logger
	last      *atomic.Pointer[reading]

	mem      *monitor.Sampler
	memState monitor.State
	cpu      *monitor.CPUSampler
	cpuState monitor.CPUState
	ticks    repeat
}

func (a *monitorActor) memoryOn() bool {
	return a.memPolicy.WarnBytes > 0 || a.memPolicy.LimitBytes > 0
}

func (a *monitorActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		if a.memoryOn() {
			s, err := monitor.NewSampler(a.ospid, a.tree)
			if err != nil {
				return // gone already: the joiner will say so
			}
			s.PSSAbove = a.memPolicy.WarnBytes
			if a.memPolicy.WarnBytes == 0 || (a.memPolicy.LimitBytes > 0 && a.memPolicy.LimitBytes < a.memPolicy.WarnBytes) {
				s.PSSAbove = a.memPolicy.LimitBytes
			}
			a.mem = s
		}
		if a.cpuPolicy.WarnPercent > 0 {
			s, err := monitor.NewCPUSampler(a.ospid, a.cgroup)
			if err != nil {
				return
			}
			a.cpu = s
			a.cpuState.CPU, _ = s.Sample() // the first interval's start
			a.cpuState.At = time.Now()
		}
		a.ticks.first(a.system, a.interval, a.interval, ctx.Self(), &monitorTick{})
	case *monitorTick:
		r := &reading{}
		if a.mem != nil {
			if !a.sampleMemory(ctx, r) {
				return // stop sampling: gone (the joiner reports the end), or over the limit
			}
		}
		if a.cpu != nil {
			cpu, err := a.cpu.Sample()
			if err != nil {
				return
			}
			now := time.Now()
			if a.cpuPolicy.Decide(&a.cpuState, cpu, now) == monitor.Warn {
				ctx.Send(a.owner, &cpuWarning{about: about{a.ospid}, percent: a.cpuState.Percent,
					above: now.Sub(a.cpuState.AboveSince), cpu: cpu})
			}
			r.cpu, r.cpuPercent, r.hasCPU = cpu, a.cpuState.Percent, true
		}
		a.last.Store(r)
		a.ticks.next(a.system, a.interval, ctx.Self(), &monitorTick{})
	case *actor.Stopping, *actor.Restarting:
		a.ticks.stop()
		if a.mem != nil {
			a.mem.Close()
		}
		if a.cpu != nil {
			a.cpu.Close()
		}
	}
}

// sampleMemory takes a memory sample (the cgroup's memory.current where the kernel keeps
// it) and applies the policy; it reports false when sampling should stop.
func (a *monitorActor) sampleMemory(ctx actor.Context, r *reading) bool {
	var s monitor.Sample
	ok := false
	if a.cgroup != "" {
		s, ok = monitor.SampleCgroup(a.cgroup)
	}
	if !ok {
		var err error
		if s, err = a.mem.Sample(); err != nil {
			if !errors.Is(err, monitor.ErrGone) {
				a.log.Warn("failed to get memory info for process", "error", err)
			}
			return false
		}
	}
	r.memory = s
	switch a.memPolicy.Decide(&a.memState, s, s.At) {
	case monitor.Warn:
		ctx.Send(a.owner, &memoryWarning{about: about{a.ospid}, s: s, growth: a.memState.Growth(s.Bytes)})
	case monitor.OverLimit:
		ctx.Send(a.owner, &memoryOverLimit{about: about{a.ospid}, s: s})
		return false
	}
	return true
}
