package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
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
		plain := *cfg.Plain
		if plain.ReadyInterval == 0 {
			plain.ReadyInterval = DefaultReadyInterval
		}
		if plain.StopSignal == 0 {
			plain.StopSignal = syscall.SIGTERM
		}
		cfg.Plain = &plain
		cfg.PingInterval, cfg.PingTimeout, cfg.HighPingThreshold = 0, 0, 0 // nothing to ping
	}
	reg := &incarnations{m: map[string]*incarnation{}}
	return actor.PropsFromProducer(func() actor.Actor {
		return &process{cfg: cfg, reg: reg}
	}, actor.WithMailbox(lateMailbox(answerStopped, holdEnd, cfg.WriteTimeout))), nil
}

// endAsked is what holdEnd asks a process actor when protoactor would stop or restart
// it: the actor answers whether it takes the end over (it has a process to end first).
type endAsked struct {
	restart bool // a Restart, not a Stop
	taken   bool // the answer
}

// holdEnd lets a process actor end its process before protoactor stops or restarts it,
// by the same path as every other end: graceful within CloseTimeout, then a kill of the
// group, the exit reaped, the logs drained, Exited reported; only then does the actor
// send itself the Stop or Restart again, and this time it goes through.
func holdEnd(invoke func(msg any), sys any) bool {
	_, restart := sys.(*actor.Restart)
	q := &endAsked{restart: restart}
	invoke(q)
	return q.taken
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
	// lastWord is the child's Exiting, stored by the reader as it reads it: the end
	// knows it once controlDone is closed.
	lastWord *atomic.Pointer[wire.Exiting]
	pongs    *pongs
	reading  atomic.Pointer[reading] // the monitor's last sample (read by the metrics too)
	logStats *logStats
	cancels  []func()
	held     []held     // Asks and Sends that came before the process ran
	stderr   *tail      // the end of the child's stderr, when the config keeps it
	output   []*lineLog // a plain program's stdout and stderr, logged line by line
	ran      bool       // it reached running

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

	asks *asks

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
		if p.asks != nil {
			p.asks.release()
		}
		p.released()
		p.metrics.track(p, false) // a restart makes a new instance: this one is gone
	case *actor.Stopped:
		p.reg.stopped(p.self.Id)
		p.metrics.track(p, false)
	case *messages.GetStatus, *messages.GetSnapshot:
		ctx.Respond(p.statusNow())
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
	p.asks = newAsks(p.system)
	from := messages.Starting
	if p.restarts > 0 {
		from = messages.Dead
	}
	p.become(from, messages.Starting, p.queued)
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
	launcher := p.cfg.Launcher
	if cmd, ok := launcher.(*launch.Command); ok && p.cfg.StderrTail > 0 && cmd.Stderr == nil {
		c := *cmd // the config's Command is shared by every start: change a copy
		p.stderr = &tail{max: p.cfg.StderrTail}
		c.Stderr = p.stderr
		launcher = &c
	}
	if !p.start(ctx, launcher) {
		return
	}
	proc := p.proc
	// Until the child announces its cap in the handshake, it is taken to accept the default.
	p.w = wire.NewWriter(deadlineConn{proc.Control(), p.cfg.WriteTimeout}, 0)
	p.w.SetLimit(0, "to the child")
	p.logsDone, p.controlDone = make(chan struct{}), make(chan struct{})
	p.pongs = newPongs(p.system, p.self, proc.Pid(), p.cfg.HighPingThreshold)
	p.pongs.metrics, p.pongs.name = p.metrics, p.metricName
	p.spawnChild(ctx, "reader", &reader{socketActor: p.socketActor(proc.Control()), asks: p.asks, pongs: p.pongs,
		done: p.controlDone, lastWord: p.lastWord})
	p.spawnChild(ctx, "logs", &logReader{socketActor: p.socketActor(proc.Logs()), rate: p.cfg.LogRate, done: p.logsDone, stats: p.logStats})
	p.spawnChild(ctx, "joiner", &joiner{system: p.system, owner: p.self, proc: proc})

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

// start starts the process with launcher (in its cgroup, with the config's), or
// finishes the actor with ReasonStartFailed; it reports whether the process runs.
func (p *process) start(ctx actor.Context, launcher launch.Launcher, opts ...launch.Option) bool {
	if p.cfg.Cgroups != nil {
		opts = append(opts, launch.InCgroup(p.cfg.Cgroups, p.self.Id, p.cfg.CgroupLimits))
	}
	proc, err := launch.Start(context.Background(), launcher, opts...)
	if err != nil {
		p.log.Error("failed to start process", "error", err)
		p.reason, p.err = messages.ReasonStartFailed, err
		p.finish(ctx)
		return false
	}
	p.proc, p.startedAt = proc, proc.StartTime()
	p.metrics.started(p.metricName)
	p.log = p.log.With("pid", proc.Pid())
	if cg := proc.Cgroup(); cg != nil {
		p.log = p.log.With("cgroup", cg.Dir())
	}
	p.lastWord = &atomic.Pointer[wire.Exiting]{}
	p.logStats = &logStats{}
	return true
}

// socketActor is the common part of the actors that read conn.
func (p *process) socketActor(conn net.Conn) socketActor {
	r := wire.NewReader(conn, p.cfg.MaxFrame)
	r.SetDirection("from the child")
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
// interval, so it saves the parent about a kilobyte a process (five rings) at no cost
// that shows; the process actor, which every Ask goes through, keeps the default.
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
			p.become(messages.Initializing, messages.Running, p.running)
			p.sendHeld()
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

// hold keeps an Ask or Send that came before the process runs, to send when it does; up
// to MaxHeld of them.
func (p *process) hold(ctx actor.Context) {
	if len(p.held) >= p.cfg.MaxHeld {
		err := ErrHeldFull
		if p.cfg.MaxHeld == 0 {
			err = ErrNotRunning
		}
		respond(ctx.Sender(), p.system, err)
		return
	}
	p.held = append(p.held, held{msg: ctx.Message(), sender: ctx.Sender()})
}

// held is an Ask or Send waiting for the process to run.
type held struct {
	msg    any
	sender *actor.PID
}

// sendHeld sends what was held, in order, now that the process runs.
func (p *process) sendHeld() {
	for _, h := range p.held {
		switch m := h.msg.(type) {
		case *messages.Ask:
			p.ask(h.sender, m)
		case *messages.Send:
			p.sendApp(h.sender, m)
		}
	}
	p.held = nil
}

// failHeld answers what was held with err: the process will not run.
func (p *process) failHeld(err error) {
	for _, h := range p.held {
		respond(h.sender, p.system, err)
	}
	p.held = nil
}

// respond answers an Ask or a Send with a sender.
func respond(to *actor.PID, system *actor.ActorSystem, err error) {
	if to != nil {
		system.Root.Send(to, &messages.Response{Err: err})
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
	if p.cfg.CloseTimeout == 0 {
		p.kill()
	} else {
		if p.cfg.Plain != nil {
			p.proc.SignalAll(p.cfg.Plain.StopSignal)
		} else {
			p.send(&wire.ShutdownRequest{Reason: why})
		}
		p.cancels = append(p.cancels, sendAfter(p.system, p.cfg.CloseTimeout, p.self, &closeTimedOut{about{p.proc.Pid()}}))
	}
	p.become(p.state, messages.Closing, p.closing)
}

func (p *process) setReason(r messages.Reason, err error) {
	if p.reason == messages.ReasonNone {
		p.reason, p.err = r, err
	}
}

// killFor records why and kills the process group. The end is reported when the
// joiner sees the exit.
func (p *process) killFor(r messages.Reason, err error) {
	p.setReason(r, err)
	p.kill()
}

// kill kills the process group: SIGKILL, or SIGQUIT first when stack dumps are on.
func (p *process) kill() {
	if p.proc == nil || p.exited || p.killSent {
		return
	}
	p.killSent = true
	if p.cfg.StackDumpGrace > 0 {
		p.proc.Signal(syscall.SIGQUIT)
		p.cancels = append(p.cancels, sendAfter(p.system, p.cfg.StackDumpGrace, p.self, &stackDumpOver{about{p.proc.Pid()}}))
		return
	}
	p.proc.Kill()
}

// onExit records the exit and finishes once both sockets are drained (at most logsWait
// later).
func (p *process) onExit(ctx actor.Context, st launch.ExitStatus) {
	p.exited, p.status = true, st
	p.runCancels()
	p.clearGroup()
	if p.pinger != nil {
		ctx.Stop(p.pinger)
		p.pinger = nil
	}
	if p.drained() {
		p.finish(ctx)
		return
	}
	p.cancels = append(p.cancels, sendAfter(p.system, logsWait, p.self, &logsWaitOver{about{p.proc.Pid()}}))
}

// drained reports whether both sockets were read to their end: every log record and the
// child's last control frame (its Exiting) are in.
func (p *process) drained() bool {
	for _, done := range []chan struct{}{p.logsDone, p.controlDone} {
		select {
		case <-done:
		default:
			return false
		}
	}
	return true
}

// finish reports Exited, releases the process and decides what becomes of the actor:
// a requested end or a non-failure under the restart policy stops it; a failure goes
// to the parent's supervisor strategy.
func (p *process) finish(ctx actor.Context) {
	if p.finished {
		return
	}
	p.giveSlotBack()
	ev := p.report()
	p.become(p.state, messages.Dead, p.dead)
	p.publish(ev)
	if p.proc != nil && p.proc.Cgroup() == nil {
		p.closeProc() // the sockets, read to their end: after the event, not on its way
	}
	failed := p.then == thenDecide && !ev.Reason.Requested() && p.cfg.Restart != Temporary &&
		!(p.cfg.Restart == Transient && ev.Reason == messages.ReasonExited)
	var fe *FailureError
	if failed {
		fe = failureOf(ev)
		p.lastError = fe
	}
	p.reg.ended(p.self.Id, ev.Reason, p.lastError) // before the strategy restarts the actor
	p.metrics.exited(p.metricName, ev)
	switch {
	case p.then == thenRestart: // protoactor's Restart, held until now
		if self, ok := p.system.ProcessRegistry.Get(p.self); ok {
			self.SendSystemMessage(p.self, &actor.Restart{})
		}
	case failed:
		escalate(ctx, fe)
	default:
		ctx.Stop(p.self)
	}
}

// report completes the end's record, logs it, fails pending asks and closes the sockets.
func (p *process) report() *messages.Exited {
	p.finished = true
	p.runCancels()
	ev := &messages.Exited{PID: p.self, Reason: p.reason, Err: p.err}
	if p.proc != nil {
		ev.OSPid = p.proc.Pid()
		ev.ExitCode, ev.Signal = p.status.Code, p.status.Signal
		ev.Killed = p.killedIt()
		ev.Uptime = time.Since(p.startedAt)
		ownExit := !ev.Killed && p.killSent // it exited by itself before our kill landed
		switch {
		case ev.Reason == messages.ReasonNone,
			ev.Reason == messages.ReasonProtocolError && p.eof && !ev.Killed,
			ownExit && (ev.Reason == messages.ReasonUnresponsive || ev.Reason == messages.ReasonMemoryLimit || ev.Reason == messages.ReasonInitTimeout):
			// It ended by itself (closing its socket on the way out is no protocol error;
			// a verdict whose kill came too late is not why it ended).
			ev.Reason, ev.Err = messages.ReasonExited, nil
			if !p.status.Success() {
				ev.Reason = messages.ReasonCrashed
			}
			if last := p.lastWord.Load(); last != nil {
				ev.Err = &messages.ChildError{Reason: last.Reason, Panic: last.Panic}
			}
			if !p.ran {
				// Any exit before the InitializeResponse is a failed initialization.
				ev.Reason, ev.Err = messages.ReasonInitFailed, fmt.Errorf("exited before initializing (%s)", p.status)
			}
		}
		ev.CPU = p.status.CPU
		if cg := p.proc.Cgroup(); cg != nil {
			if st, err := cg.Stats(); err == nil {
				ev.CPU = st.CPU // the descendants' too
				if st.OOMKills > 0 && p.status.Signal == syscall.SIGKILL && !ev.Killed &&
					(ev.Reason == messages.ReasonCrashed || ev.Reason == messages.ReasonInitFailed) {
					ev.Reason, ev.Err = messages.ReasonOOMKilled, fmt.Errorf("%d process(es) of its cgroup killed by the OOM killer", st.OOMKills)
				}
			}
		}
		for _, l := range p.output {
			l.flush() // complete: the process was reaped, its output read to the end
		}
		ev.LogsDropped = p.logsLost()
		if p.stderr != nil {
			ev.Stderr = p.stderr.String() // complete: the process was reaped, its stderr read to the end
		}
		if !p.status.Success() && !ev.Killed && p.log.Enabled(context.Background(), slog.LevelError) {
			p.log.Error(fmt.Sprintf("process exited with non-zero exit code %d", p.status.Code), "status", p.status.String())
		}
		if p.proc.Cgroup() != nil {
			p.closeProc() // the cgroup is gone before Exited says so
		}
	}
	if ev.Err != nil {
		p.lastError = ev.Err
	}
	p.reason = ev.Reason
	p.asks.close(fmt.Errorf("%w: %w", ErrProcessEnded, ev.Reason))
	p.failHeld(fmt.Errorf("%w (the process ended: %w)", ErrNotRunning, ev.Reason))
	return ev
}

// closeProc closes the process's sockets and removes its cgroup, emptied by clearGroup.
func (p *process) closeProc() {
	if err := p.proc.Close(); err != nil {
		p.log.Error("failed to close the process's sockets or remove its cgroup", "error", err)
	}
}

// logsLost counts the child's log records that did not reach the parent's logger, and
// says so in a warning. Only final once the logs are drained.
func (p *process) logsLost() uint64 {
	var total uint64
	if last := p.lastWord.Load(); last != nil {
		total = last.LogRecords
	}
	n := p.logStats.lost(total)
	if n > 0 {
		p.log.Warn("child log records were lost", "dropped", n)
	}
	return n
}

// killedIt reports whether procsup's kill ended the process (not an exit of its own that
// came first). A Go child answers the stack dump's SIGQUIT by exiting with code 2.
func (p *process) killedIt() bool {
	return p.killSent && (p.status.Signal != 0 || (p.cfg.StackDumpGrace > 0 && p.status.Code == 2))
}

// endAsked answers protoactor's Stop or Restart (through holdEnd): with a process to end,
// the actor takes it over, ends the process by the one ending path (a Close, unless an
// end is under way already) and stops or restarts itself from finish; without one, the
// Stop or Restart goes on now.
func (p *process) endAsked(ctx actor.Context, restart bool) bool {
	if p.proc == nil || p.finished {
		return false
	}
	switch {
	case !restart:
		p.then = thenStop
	case p.then != thenStop: // a Stop asked for earlier still wins
		p.then = thenRestart
	}
	if p.reason == messages.ReasonNone && !p.exited {
		p.close(ctx, "actor stopping")
	}
	return true
}

// released is the Stopping or Restarting of an actor whose process has ended (or never
// started): what it still holds goes back. Messages that come until it is gone find the
// dead state, which spawns nothing and starts nothing.
func (p *process) released() {
	p.behavior.Become(p.dead)
	p.giveSlotBack()
	p.runCancels()
	p.failHeld(ErrNotRunning)
	if p.proc != nil && !p.finished {
		// Not by holdEnd: only a bug gets here. Leave no process behind all the same.
		p.log.Error("process actor stopped with its process running: killing the group")
		p.proc.Kill()
	}
}

// clearGroup kills whatever is left of the process's group (grandchildren) and waits
// until none of it runs.
func (p *process) clearGroup() {
	ctx, cancel := context.WithTimeout(context.Background(), groupWait)
	defer cancel()
	if err := p.proc.KillGroupAndWait(ctx); err != nil {
		p.log.Error("process group survived SIGKILL", "error", err)
	}
}

// ask sends a request to the child; the reader answers sender when the reply comes.
func (p *process) ask(sender *actor.PID, m *messages.Ask) {
	if sender == nil {
		p.log.Warn("an Ask without a sender: use actors.Ask, Request or RequestFuture", "kind", m.Kind)
		return
	}
	id, ok := p.asks.add(sender)
	if !ok {
		respond(sender, p.system, ErrNotRunning)
		return
	}
	if err := p.send(&wire.Request{ID: id, Kind: m.Kind, Body: m.Body}); err != nil {
		if p.asks.forget(id) {
			respond(sender, p.system, sendError(err))
		}
	}
}

// sendApp sends a one-way message to the child; a sender learns how it went.
func (p *process) sendApp(sender *actor.PID, m *messages.Send) {
	err := p.send(&wire.Message{Kind: m.Kind, Body: m.Body})
	if err != nil {
		err = sendError(err)
		p.log.Warn("failed to send a message to the child", "kind", m.Kind, "error", err)
	}
	respond(sender, p.system, err)
}

// sendError is what a sender learns of a failed write to the child: a frame over the
// child's cap as it is, a child that does not read as ErrChildNotReading, anything else
// (a broken pipe: the child is gone) as ErrProcessEnded.
func sendError(err error) error {
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrChildNotReading
	}
	return fmt.Errorf("%w: %v", ErrProcessEnded, err)
}

// send writes m to the child. A child that has not read its socket for the whole
// WriteTimeout is killed for it.
func (p *process) send(m wire.Wire) error {
	err := p.w.Write(m)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.killFor(messages.ReasonProtocolError, ErrChildNotReading)
	}
	return err
}

// become switches behavior and reports the transition.
func (p *process) become(from, to messages.State, b actor.ReceiveFunc) {
	p.behavior.Become(b)
	p.enter(from, to)
}

// enter records the state and reports the transition.
func (p *process) enter(from, to messages.State) {
	p.state = to
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

func (p *process) statusNow() *messages.Status {
	s := &messages.Status{State: p.state, Restarts: p.restarts, Reason: p.reason, LastError: p.lastError}
	if !p.finished {
		s.Reason = p.previous.reason // the current process has not ended: the last one's
	}
	if s.LastError == nil {
		s.LastError = p.previous.lastError
	}
	if p.logStats != nil {
		s.LogsDropped = p.logStats.lost(0)
	}
	if p.proc != nil {
		s.OSPid, s.StartedAt = p.proc.Pid(), p.startedAt
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
// CPU time read now (the cgroup's, or /proc's while the process runs, or its exit's).
func (p *process) figures(s *messages.Status) {
	if p.pongs != nil {
		s.PingRTT = time.Duration(p.pongs.rtt.Load())
	}
	if r := p.reading.Load(); r != nil {
		s.Memory, s.MemoryFigure, s.CPUPercent = r.memory.Bytes, string(r.memory.Figure), r.cpuPercent
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
	} else if !p.exited {
		if c, err := monitor.NewCPUSampler(p.proc.Pid(), ""); err == nil {
			s.CPU, _ = c.Sample()
			c.Close()
		}
	}
}

// escalate hands a failure to the parent's supervisor strategy.
func escalate(ctx actor.Context, err error) {
	if s, ok := ctx.(interface{ EscalateFailure(reason, message any) }); ok {
		s.EscalateFailure(err, nil)
		return
	}
	panic(err) // the mailbox turns a panic into the same escalation
}
