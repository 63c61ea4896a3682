package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/internal/reply"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/monitor"
)

// logsWait bounds how long the end of a process waits for its log socket to drain, and
// eofGrace how long a child that closed its control socket may take to exit by itself.
const (
	logsWait = 2 * time.Second
	eofGrace = 200 * time.Millisecond
	// groupWait bounds the wait for a killed process group to be gone.
	groupWait = 5 * time.Second
)

// NewProcess returns the Props of a process actor for cfg, or an error matching
// [ErrBadConfig]. Spawn it under a parent actor (a [Tree], say) so that its failures
// reach a supervisor strategy: protoactor ignores WithSupervisor on actors spawned from
// system.Root.
func NewProcess(cfg Config) (*actor.Props, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = wire.DefaultMaxFrame
	}
	if cfg.Plain != nil {
		cfg = plainDefaults(cfg)
	}
	reg := &incarnations{m: map[string]*incarnation{}}
	print := configPrint(cfg)
	return actor.PropsFromProducer(func() actor.Actor {
		return &process{cfg: cfg, reg: reg, print: print}
	}, actor.WithMailbox(lateMailbox(answerStopped, holdEnd, true))), nil
}

// incarnations remembers, per actor, what outlives an instance: a restart makes a new
// instance under the same PID.
type incarnations struct {
	mu sync.Mutex
	m  map[string]*incarnation
}

// incarnation is what an actor's instances hand on: how many restarts, and how the last
// process ended.
type incarnation struct {
	restarts  int
	reason    messages.Reason
	lastError error
}

// started counts an instance's start and returns what the earlier ones left.
func (r *incarnations) started(id string) incarnation {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, seen := r.m[id]
	if !seen {
		in = &incarnation{}
		r.m[id] = in
	} else {
		in.restarts++
	}
	return *in
}

// ended records how a process of the actor ended.
func (r *incarnations) ended(id string, reason messages.Reason, lastError error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in := r.m[id]; in != nil {
		in.reason, in.lastError = reason, lastError
	}
}

func (r *incarnations) stopped(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

// process is the actor that supervises one OS process. Its states are behaviors, one
// method each: starting (in Started), initializing, running, closing and dead.
type process struct {
	cfg      Config
	print    string // configPrint(cfg)
	reg      *incarnations
	behavior actor.Behavior
	metrics  *instruments // nil without a MeterProvider
	// metricName labels its measurements; publicState mirrors state for the gauges.
	metricName  string
	publicState atomic.Int32
	system      *actor.ActorSystem
	self        *actor.PID
	parent      *actor.PID
	log         *slog.Logger
	state       messages.State
	restarts    int
	previous    incarnation // how the earlier instance's process ended

	proc      *launch.Process
	w         *wire.Writer
	startedAt time.Time
	pinger    *actor.PID
	logsDone  chan struct{}
	// controlDone is closed when the control socket's reader has stopped (at its end,
	// after the child's last frame).
	controlDone chan struct{}
	// heard is what the reader read of the child's last word and its initialization,
	// stored as it reads them: the end knows them once controlDone is closed.
	heard    *heard
	pongs    *pongs
	reading  atomic.Pointer[reading] // the monitor's last sample (read by the metrics too)
	logStats *logStats
	cancels  []func()
	held     []held     // Asks and Sends that came before the process ran
	stderr   *tail      // the end of the child's stderr, when the config keeps it
	output   []*lineLog // a plain program's stdout and stderr, logged line by line
	ran      bool       // it reached running
	adopted  bool       // it was adopted from a keeper, not started

	// How it ends: decided when procsup intervenes, completed when the exit is known.
	reason    messages.Reason
	err       error
	killSent  bool
	exited    bool
	status    launch.ExitStatus
	eof       bool // the control socket reached end of stream
	finished  bool // Exited was reported
	then      then // what protoactor asked for when it wanted the actor stopped or restarted
	lastError error

	pending *pending // the requests written and not answered yet
	gate    *gate    // the actor's gate: its request handle is published there while running
	handle  *handle

	limiter    *Limiter
	slot       slotState
	cancelSlot func() bool
}

// then is what becomes of the actor once its process has ended, when protoactor asked.
type then int

const (
	thenDecide  then = iota // by the end's reason and the restart policy
	thenStop                // protoactor's Stop: stop
	thenRestart             // protoactor's Restart: restart
)

// slotState is where a process actor is with its limiter slot.
type slotState int

const (
	slotNone slotState = iota
	slotWaiting
	slotHeld
	slotReleased
)

// Receive handles the lifecycle and status in every state, and hands the rest to the
// current state's behavior.
func (p *process) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.starting(ctx)
	case *endAsked:
		m.taken = p.endAsked(ctx, m.restart)
	case *actor.Stopping, *actor.Restarting:
		p.withdrawHandle()
		p.released()
		p.metrics.track(p, false) // a restart makes a new instance: this one is gone
	case *actor.Stopped:
		p.reg.stopped(p.self.Id)
		gatesOf(p.system).m.CompareAndDelete(p.self.Id, p.gate)
		p.metrics.track(p, false)
	case *messages.GetStatus:
		ctx.Respond(p.statusNow(true))
	case *messages.GetSnapshot:
		ctx.Respond(p.statusNow(false)) // a snapshot of many processes carries no stderr
	case *actor.Terminated:
	case *messages.Ask, *messages.Send:
		if p.cfg.Plain != nil {
			respond(ctx.Sender(), p.system, ErrNoProtocol) // in every state
			return
		}
		p.behavior.Receive(ctx)
	case *readFailed:
		if p.staleOrNot(m) {
			return
		}
		p.behavior.Receive(ctx)
		if p.exited && p.drained() {
			p.finish(ctx)
		}
	default:
		if p.staleOrNot(m) {
			return
		}
		p.behavior.Receive(ctx)
	}
}

// staleOrNot reports whether m is about an earlier process of this actor.
func (p *process) staleOrNot(m any) bool {
	a, ok := m.(aboutProcess)
	return ok && (p.proc == nil || a.aboutPid() != p.proc.Pid())
}

// starting launches the process, spawns the child actors and sends InitializeRequest.
func (p *process) starting(ctx actor.Context) {
	p.system, p.self, p.parent = ctx.ActorSystem(), ctx.Self(), ctx.Parent()
	p.previous = p.reg.started(p.self.Id)
	p.metrics, p.metricName = metricsOf(p.system), p.cfg.Name
	if p.metricName == "" {
		p.metricName = metricName(p.self.Id)
	}
	p.metrics.track(p, true)
	p.restarts = p.previous.restarts
	p.log = p.cfg.Logger.With("actor", p.self.Id)
	p.pending = newPending(p.system)
	if g, ok := gatesOf(p.system).m.Load(p.self.Id); ok {
		p.gate = g.(*gate)
	}
	from := messages.Starting
	if p.restarts > 0 {
		from = messages.Dead
	}
	p.become(from, messages.Starting, p.queued)
	if p.adoptKept(ctx) {
		return
	}
	p.limiter = p.cfg.InitLimiter
	if p.limiter == nil {
		p.limiter = DefaultLimiter
	}
	p.slot = slotWaiting
	system, self, token := p.system, p.self, &slotGranted{p}
	p.cancelSlot = p.limiter.acquire(func() { system.Root.Send(self, token) })
}

// queued is the starting state's wait for a slot of the limiter on initializations.
func (p *process) queued(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *slotGranted:
		if m.owner == p && p.slot == slotWaiting {
			p.slot = slotHeld
			p.launch(ctx)
		}
	case *messages.Close, *messages.Kill:
		p.reason = messages.ReasonClosed
		if _, kill := m.(*messages.Kill); kill {
			p.reason = messages.ReasonKilled
		}
		p.giveSlotBack()
		p.finish(ctx)
	case *messages.Ask, *messages.Send:
		p.hold(ctx)
	}
}

// giveSlotBack returns the limiter slot, or withdraws the request for one, once.
func (p *process) giveSlotBack() {
	switch p.slot {
	case slotWaiting:
		if !p.cancelSlot() {
			p.limiter.release() // granted, the grant not yet received: it will be ignored
		}
	case slotHeld:
		p.limiter.release()
	}
	p.slot = slotReleased
}

// launch starts the process, spawns the child actors and sends InitializeRequest.
func (p *process) launch(ctx actor.Context) {
	if p.cfg.Plain != nil {
		p.launchPlain(ctx)
		return
	}
	if !p.start(ctx, p.protocolOutput()) {
		return
	}
	p.attach(ctx, 0, false) // until the child announces its cap in the handshake, it is taken to accept the default
	proc := p.proc

	p.log.Info("initializing process")
	err := p.send(&wire.InitializeRequest{
		PingInterval: p.cfg.PingInterval, PingTimeout: p.cfg.PingTimeout,
		HighPingThreshold: p.cfg.HighPingThreshold, Debug: p.cfg.Debug, Payload: p.cfg.Payload,
		MaxFrame: p.cfg.MaxFrame, Fragments: true,
	})
	if err != nil {
		p.killFor(messages.ReasonProtocolError, fmt.Errorf("sending InitializeRequest: %w", err))
	}
	if p.cfg.InitializeTimeout > 0 {
		p.cancels = append(p.cancels, sendAfter(p.system, p.cfg.InitializeTimeout, p.self, &initTimedOut{about{proc.Pid()}}))
	}
	p.become(messages.Starting, messages.Initializing, p.initializing)
}

// protocolOutput returns the launcher of a protocol child, with the tail of its stderr
// kept where the config says so and its Command has no writer of its own.
func (p *process) protocolOutput() launch.Launcher {
	launcher := p.cfg.Launcher
	if cmd, ok := launcher.(*launch.Command); ok && p.cfg.StderrTail > 0 && cmd.Stderr == nil {
		c := *cmd // the config's Command is shared by every start: change a copy
		p.stderr = &tail{max: p.cfg.StderrTail}
		c.Stderr = p.stderr
		launcher = &c
	}
	return launcher
}

// attach sets up what talks with a protocol child: the writer (to a child that accepts
// maxFrame, with fragments or not), the request handle, and the child actors that read
// its sockets and wait for its exit.
func (p *process) attach(ctx actor.Context, maxFrame int, fragments bool) {
	proc := p.proc
	p.w = wire.NewWriter(deadlineConn{proc.Control(), p.cfg.WriteTimeout}, 0)
	p.w.SetLimit(maxFrame, "to the child")
	p.w.SetFragments(fragments)
	var readMark, logsMark *atomic.Uint32
	if m := proc.Marks(); m != nil {
		p.w.SetMarks(m.ControlWrite(), m.ControlBulk())
		readMark, logsMark = m.ControlRead(), m.LogsRead()
	}
	p.handle = &handle{system: p.system, owner: p.self, ospid: proc.Pid(), w: p.w, pending: p.pending, wake: reply.NewWaker()}
	p.w.SetLateFailure(p.handle.lateFailure)
	p.logsDone, p.controlDone = make(chan struct{}), make(chan struct{})
	p.pongs = newPongs(p.system, p.self, proc.Pid(), p.cfg.HighPingThreshold)
	p.pongs.metrics, p.pongs.name = p.metrics, p.metricName
	p.spawnChild(ctx, "reader", &reader{socketActor: p.socketActor(proc.Control(), readMark), pending: p.pending, pongs: p.pongs,
		done: p.controlDone, heard: p.heard})
	p.spawnChild(ctx, "logs", &logReader{socketActor: p.socketActor(proc.Logs(), logsMark), rate: p.cfg.LogRate, done: p.logsDone, stats: p.logStats})
	p.spawnChild(ctx, "joiner", &joiner{system: p.system, owner: p.self, proc: proc})
}

// start starts the process with launcher (in its cgroup, with the config's; through
// the keeper, with the config's), or finishes the actor with ReasonStartFailed; it
// reports whether the process runs.
func (p *process) start(ctx actor.Context, launcher launch.Launcher, opts ...launch.Option) bool {
	if p.cfg.Cgroups != nil {
		opts = append(opts, launch.InCgroup(p.cfg.Cgroups, p.self.Id, p.cfg.CgroupLimits))
	}
	if p.cfg.Keeper != nil {
		opts = append(opts, p.kept())
	}
	proc, err := launch.Start(context.Background(), launcher, opts...)
	if err != nil {
		p.log.Error("failed to start process", "error", err)
		p.reason, p.err = messages.ReasonStartFailed, err
		p.finish(ctx)
		return false
	}
	p.took(proc)
	return true
}

// took makes proc, started or adopted, the actor's process.
func (p *process) took(proc *launch.Process) {
	p.proc, p.startedAt = proc, proc.StartTime()
	p.metrics.started(p.metricName)
	p.log = p.log.With("pid", proc.Pid())
	if cg := proc.Cgroup(); cg != nil {
		p.log = p.log.With("cgroup", cg.Dir())
	}
	p.heard = &heard{}
	p.logStats = newLogStats(proc.Marks())
}

// socketActor is the common part of the actors that read conn; mark, when not nil, is
// its stream's mark (see launch.Marks).
func (p *process) socketActor(conn net.Conn, mark *atomic.Uint32) socketActor {
	r := wire.NewReader(conn, p.cfg.MaxFrame)
	r.SetDirection("from the child")
	if mark != nil {
		r.SetMark(mark)
	}
	return socketActor{system: p.system, owner: p.self, ospid: p.proc.Pid(), conn: conn, r: r, log: p.log}
}

func (p *process) spawnChild(ctx actor.Context, name string, a actor.Actor) *actor.PID {
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return a }, childMailbox), name)
	if err != nil { // only a name clash, which cannot happen: children are gone before a restart
		p.log.Error("failed to spawn child actor", "name", name, "error", err)
	}
	return pid
}

// childMailbox gives the child actors protoactor's lock-free unbounded mailbox: its
// queues are linked lists that start empty, where the default mailbox starts each
// actor's queue with a ring of ten slots. The child actors get a few messages a ping
// interval, so they need no more.
var childMailbox = actor.WithMailbox(actor.UnboundedLockfree())

// initializing waits for the InitializeResponse.
func (p *process) initializing(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *frameIn:
		resp, ok := m.m.(*wire.InitializeResponse)
		switch {
		case !ok:
			p.killFor(messages.ReasonProtocolError, fmt.Errorf("first message was %s, want %s", m.m.WireType(), wire.TypeInitializeResponse))
		case resp.Error != "":
			p.log.Error("process initialization failed: " + resp.Error)
			p.initFailed(errors.New(resp.Error))
		default:
			p.runCancels()
			p.giveSlotBack()
			p.w.SetLimit(resp.MaxFrame, "to the child")
			p.w.SetFragments(resp.Fragments)
			p.log.Info("process initialized", "elapsed", time.Since(p.startedAt))
			p.metrics.ready(p.metricName, time.Since(p.startedAt))
			p.startChecks(ctx)
			p.ran = true
			p.noteKept(keptRunning, resp.MaxFrame, resp.Fragments)
			p.become(messages.Initializing, messages.Running, p.running)
			p.sendHeld()
			p.publishHandle() // after what was held: nothing overtakes it
		}
	case *initTimedOut:
		p.log.Error("initialization timed out, killing process")
		p.killFor(messages.ReasonInitTimeout, fmt.Errorf("no InitializeResponse within %v", p.cfg.InitializeTimeout))
	case *messages.Close:
		p.close(ctx, m.Reason)
	case *messages.Ask, *messages.Send:
		p.hold(ctx)
	default:
		p.common(ctx)
	}
}

// initFailed gives a child that reported a failed initialization CloseTimeout to exit by
// itself (as the child runtime does at once), as to a child asked to shut down, then
// kills it: the same failure ends the same way every time.
func (p *process) initFailed(err error) {
	p.setReason(messages.ReasonInitFailed, err)
	p.runCancels()
	if p.cfg.CloseTimeout == 0 {
		p.kill()
	} else {
		p.cancels = append(p.cancels, sendAfter(p.system, p.cfg.CloseTimeout, p.self, &initFailGraceOver{about{p.proc.Pid()}}))
	}
	p.behavior.Become(p.failedInit)
}

// failedInit is the initializing state after the child reported its failure: it waits
// for the exit; what the child sends, or its socket's end, changes nothing.
func (p *process) failedInit(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *initFailGraceOver:
		p.log.Error("process did not exit after its failed initialization, killing process")
		p.kill()
	case *frameIn, *messages.Close:
	case *readFailed:
		if m.logs || !errors.Is(m.err, wire.ErrClosed) {
			p.common(ctx)
		}
	default:
		p.common(ctx)
	}
}

// startChecks spawns the pinger and the monitor of memory and CPU.
func (p *process) startChecks(ctx actor.Context) {
	if p.cfg.PingInterval > 0 {
		p.pongs.last.Store(monoNow()) // the silence is counted from now
		p.pongs.armed.Store(true)
		p.pinger = p.spawnChild(ctx, "pinger", &pinger{system: p.system, owner: p.self, w: p.w,
			interval: p.cfg.PingInterval, timeout: p.cfg.PingTimeout, pongs: p.pongs})
	}
	if p.cfg.MemoryWarnMB > 0 || p.cfg.MemoryLimitMB > 0 || p.cfg.CPUWarnPercent > 0 {
		m := &monitorActor{system: p.system, owner: p.self, ospid: p.proc.Pid(),
			tree: p.cfg.MemoryTree, interval: p.cfg.MemorySampleInterval, log: p.log, last: &p.reading,
			memPolicy: monitor.Policy{
				WarnBytes: mb(p.cfg.MemoryWarnMB), LimitBytes: mb(p.cfg.MemoryLimitMB),
				Cooldown: p.cfg.MemoryWarnCooldown, RepeatGrowth: mb(p.cfg.MemoryRepeatGrowthMB),
			},
			cpuPolicy: monitor.CPUPolicy{WarnPercent: p.cfg.CPUWarnPercent, Period: p.cfg.CPUWarnPeriod, Cooldown: p.cfg.CPUWarnCooldown},
		}
		if cg := p.proc.Cgroup(); cg != nil {
			m.cgroup = cg.Dir()
		}
		p.spawnChild(ctx, "monitor", m)
	}
}

func mb(v float64) uint64 { return uint64(v * (1 << 20)) }

// running: pings, pongs, memory, application messages both ways.
func (p *process) running(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *frameIn:
		p.frame(ctx, m.m)
	case *messages.Send:
		p.sendApp(ctx.Sender(), m)
	case *messages.Ask:
		p.ask(ctx.Sender(), m)
	case *messages.Close:
		p.close(ctx, m.Reason)
	case *highPing:
		p.log.Warn("process is unresponsive", "delay", m.rtt, "threshold", p.cfg.HighPingThreshold)
		p.publish(&messages.HighPing{PID: p.self, OSPid: p.proc.Pid(), RTT: m.rtt, Threshold: p.cfg.HighPingThreshold})
	case *unresponsive:
		p.log.Error("process is unresponsive, killing process", "silence", m.silence)
		p.killFor(messages.ReasonUnresponsive, fmt.Errorf("no pong for %v", m.silence.Round(time.Millisecond)))
	case *memoryWarning:
		p.log.Warn("process memory usage is high", "memory_usage_mb", m.s.MB(), "memory_warn_mb", p.cfg.MemoryWarnMB,
			"memory_limit_mb", p.cfg.MemoryLimitMB, "figure", m.s.Figure)
		p.publish(&messages.MemoryWarning{PID: p.self, OSPid: p.proc.Pid(), Bytes: m.s.Bytes, Figure: string(m.s.Figure),
			Growth: m.growth, Warn: mb(p.cfg.MemoryWarnMB)})
	case *cpuWarning:
		p.log.Warn("process CPU usage is high", "cpu_percent", m.percent, "cpu_warn_percent", p.cfg.CPUWarnPercent, "above", m.above)
		p.publish(&messages.CPUWarning{PID: p.self, OSPid: p.proc.Pid(), Percent: m.percent, Warn: p.cfg.CPUWarnPercent, Above: m.above, CPU: m.cpu})
	case *memoryOverLimit:
		p.log.Error("process exceeded memory limit, killing process", "memory_usage_mb", m.s.MB(), "memory_limit_mb", p.cfg.MemoryLimitMB, "figure", m.s.Figure)
		p.publish(&messages.MemoryLimitExceeded{PID: p.self, OSPid: p.proc.Pid(), Bytes: m.s.Bytes, Figure: string(m.s.Figure), Limit: mb(p.cfg.MemoryLimitMB)})
		p.killFor(messages.ReasonMemoryLimit, fmt.Errorf("%s above the limit of %v MB", m.s, p.cfg.MemoryLimitMB))
	default:
		p.common(ctx)
	}
}

// frame handles a control frame from a running child.
func (p *process) frame(ctx actor.Context, m wire.Wire) {
	switch m := m.(type) {
	case *wire.Message:
		p.publish(&messages.ChildMessage{PID: p.self, OSPid: p.proc.Pid(), Kind: m.Kind, Body: m.Body})
	case *wire.Request:
		reply := &wire.Reply{ID: m.ID}
		if p.cfg.OnRequest == nil {
			reply.Error = "the parent does not take requests"
		} else if body, err := p.cfg.OnRequest(m.Kind, m.Body); err != nil {
			reply.Error = err.Error()
		} else {
			reply.Body = body
		}
		if err := p.send(reply); errors.Is(err, wire.ErrFrameTooLarge) {
			p.send(&wire.Reply{ID: m.ID, Error: "reply not sent: " + err.Error(), Code: wire.CodeFrameTooLarge})
		}
	case *wire.Exiting:
		p.log.Info("process exiting", "reason", m.Reason)
	default:
		p.killFor(messages.ReasonProtocolError, fmt.Errorf("unexpected %s from a running child", m.WireType()))
	}
}

// closing waits for the exit after a ShutdownRequest, then kills.
func (p *process) closing(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *frameIn:
		if f, ok := m.m.(*wire.Exiting); ok {
			p.log.Info("process exiting", "reason", f.Reason)
		}
	case *closeTimedOut:
		p.log.Error("process did not exit in time, killing process")
		p.kill()
	case *readFailed:
		if !m.logs && p.reason == messages.ReasonClosed {
			return // end of stream is what a closing child does
		}
		p.common(ctx)
	default:
		p.common(ctx)
	}
}

// dead: the process is gone (the actor stops or is handed to its supervisor).
// Everything else (commands, late frames, timers) is dropped.
func (p *process) dead(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *messages.Ask, *messages.Send:
		respond(ctx.Sender(), p.system, ErrNotRunning)
	}
}

// common handles what every live state handles alike.
func (p *process) common(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Kill:
		p.log.Info("killing process")
		if p.reason == messages.ReasonClosed {
			p.reason = messages.ReasonNone // a Kill during a Close: the Kill is what ends it
		}
		p.killFor(messages.ReasonKilled, nil)
	case *messages.Ask, *messages.Send:
		respond(ctx.Sender(), p.system, ErrNotRunning)
	case *readFailed:
		switch {
		case m.logs:
			p.killFor(messages.ReasonProtocolError, fmt.Errorf("log socket: %w", m.err))
		case errors.Is(m.err, wire.ErrClosed):
			// Either the child is exiting, or it closed its socket and lives on: give it
			// a moment to exit before calling it a protocol error.
			p.eof = true
			p.cancels = append(p.cancels, sendAfter(p.system, eofGrace, p.self, &eofGraceOver{about{p.proc.Pid()}}))
		default:
			p.killFor(messages.ReasonProtocolError, m.err)
		}
	case *childNotReading:
		p.killFor(messages.ReasonProtocolError, ErrChildNotReading)
	case *eofGraceOver:
		p.killFor(messages.ReasonProtocolError, errors.New("the child closed its control socket and kept running"))
	case *stackDumpOver:
		p.proc.Kill()
	case *processExited:
		p.onExit(ctx, m.status)
	case *logsDrained:
		if p.exited && p.drained() {
			p.finish(ctx)
		}
	case *logsWaitOver:
		if p.exited {
			p.finish(ctx) // a descendant holds a socket open: the end does not wait for it
		}
	}
}

// close starts a graceful shutdown: ShutdownRequest, then a kill after CloseTimeout.
func (p *process) close(ctx actor.Context, why string) {
	p.setReason(messages.ReasonClosed, nil)
	p.noteKept(keptClosing, 0, false)
	if p.cfg.CloseTimeout == 0 {
		p.kill()
	} else {
		p.askToStop(why)
		p.cancels = append(p.cancels, sendAfter(p.system, p.cfg.CloseTimeout, p.self, &closeTimedOut{about{p.proc.Pid()}}))
	}
	p.become(p.state, messages.Closing, p.closing)
}

// become switches behavior and reports the transition.
func (p *process) become(from, to messages.State, b actor.ReceiveFunc) {
	p.behavior.Become(b)
	p.enter(from, to)
}

// enter records the state and reports the transition.
func (p *process) enter(from, to messages.State) {
	p.state = to
	if to != messages.Running {
		p.withdrawHandle()
	}
	p.publicState.Store(int32(to))
	ev := &messages.StateChanged{PID: p.self, From: from, To: to}
	if p.proc != nil {
		ev.OSPid = p.proc.Pid()
	}
	p.publish(ev)
}

// publish sends an event to the parent and to the EventStream.
func (p *process) publish(ev any) {
	if p.parent != nil {
		p.system.Root.Send(p.parent, ev)
	}
	p.system.EventStream.Publish(ev)
}

func (p *process) runCancels() {
	for _, c := range p.cancels {
		c()
	}
	p.cancels = nil
}
