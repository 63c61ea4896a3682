package actors

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// A plain program (Config.Plain) does not speak procsup's protocol: it is started
// without sockets, its output lines are logged, it is running once its readiness check
// passes, and a Close signals it (see close). The rest of the actor is the same.

// launchPlain starts a plain program and waits for it to be ready.
func (p *process) launchPlain(ctx actor.Context) {
	launcher, lines := p.plainOutput()
	started := p.start(ctx, launcher, launch.WithoutProtocol())
	p.beginOutput(lines)
	if !started {
		return
	}
	p.attachPlain(ctx)
	pc := p.cfg.Plain
	if pc.ReadyTCP != "" || len(pc.ReadyCommand) > 0 {
		p.spawnChild(ctx, "ready", &readiness{system: p.system, owner: p.self, ospid: p.proc.Pid(), cfg: *pc})
		p.log.Info("waiting for the program to be ready")
	} else {
		ctx.Send(p.self, &plainReady{about{p.proc.Pid()}})
	}
	if p.cfg.InitializeTimeout > 0 {
		p.cancels = append(p.cancels, sendAfter(p.system, p.cfg.InitializeTimeout, p.self, &initTimedOut{about{p.proc.Pid()}}))
	}
	p.become(messages.Starting, messages.Initializing, p.awaitingReady)
}

// plainOutput returns the launcher of a plain program, with its stdout and stderr lines
// logged where the config's Command has no writer of its own (and the stderr's tail kept
// when the config says so), and those line logs.
func (p *process) plainOutput() (launch.Launcher, []*lineLog) {
	cmd, ok := p.cfg.Launcher.(*launch.Command)
	if !ok {
		return p.cfg.Launcher, nil
	}
	c := *cmd // the config's Command is shared by every start: change a copy
	var lines []*lineLog
	if c.Stdout == nil {
		out := newLineLog("stdout", p.cfg.LogRate)
		c.Stdout = out
		lines = append(lines, out)
	}
	if c.Stderr == nil {
		errOut := newLineLog("stderr", p.cfg.LogRate)
		c.Stderr = errOut
		if p.cfg.StderrTail > 0 {
			p.stderr = &tail{max: p.cfg.StderrTail}
			errOut.tee = p.stderr
		}
		lines = append(lines, errOut)
	}
	return &c, lines
}

// beginOutput lets a plain program's output lines through to the actor's logger (with
// the pid, or, not started, the actor alone).
func (p *process) beginOutput(lines []*lineLog) {
	for _, l := range lines {
		l.begin(p.log, p.logStats)
		p.output = append(p.output, l)
	}
}

// attachPlain spawns what a plain program needs once it runs: the joiner (it has no
// sockets: nothing to read to its end).
func (p *process) attachPlain(ctx actor.Context) {
	p.logsDone, p.controlDone = make(chan struct{}), make(chan struct{})
	close(p.logsDone)
	close(p.controlDone)
	p.spawnChild(ctx, "joiner", &joiner{system: p.system, owner: p.self, proc: p.proc})
}

// awaitingReady is a plain program's initializing state: it waits for the readiness
// check.
func (p *process) awaitingReady(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *plainReady:
		p.runCancels()
		p.giveSlotBack()
		p.log.Info("program ready", "elapsed", time.Since(p.startedAt))
		p.metrics.ready(p.metricName, time.Since(p.startedAt))
		p.startChecks(ctx)
		p.ran = true
		p.noteKept(keptRunning, 0, false)
		p.become(messages.Initializing, messages.Running, p.running)
	case *initTimedOut:
		p.log.Error("the program was not ready in time, killing process")
		p.killFor(messages.ReasonInitTimeout, fmt.Errorf("not ready within %v", p.cfg.InitializeTimeout))
	case *messages.Close:
		p.close(ctx, m.Reason)
	default:
		p.common(ctx)
	}
}

// readiness runs a plain program's readiness check every ReadyInterval until it passes,
// then tells the owner. Each check runs on a goroutine of its own, bounded by the
// interval, so the actor never blocks.
type readiness struct {
	system *actor.ActorSystem
	owner  *actor.PID
	ospid  int
	cfg    PlainConfig
	cancel context.CancelFunc
	timer  func()
}

type (
	readyCheck  struct{}
	readyResult struct{ ok bool }
)

func (a *readiness) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Send(ctx.Self(), &readyCheck{})
	case *readyCheck:
		check, self, system := a.check, ctx.Self(), a.system
		cctx, cancel := context.WithTimeout(context.Background(), max(a.cfg.ReadyInterval, time.Second))
		a.cancel = cancel
		go func() {
			ok := check(cctx)
			cancel()
			system.Root.Send(self, &readyResult{ok})
		}()
	case *readyResult:
		if m.ok {
			ctx.Send(a.owner, &plainReady{about{a.ospid}})
			return
		}
		a.timer = sendAfter(a.system, a.cfg.ReadyInterval, ctx.Self(), &readyCheck{})
	case *actor.Stopping, *actor.Restarting:
		if a.cancel != nil {
			a.cancel()
		}
		if a.timer != nil {
			a.timer()
		}
	}
}

// check runs the readiness check once.
func (a *readiness) check(ctx context.Context) bool {
	if a.cfg.ReadyTCP != "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a.cfg.ReadyTCP)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	cmd := exec.CommandContext(ctx, a.cfg.ReadyCommand[0], a.cfg.ReadyCommand[1:]...)
	cmd.WaitDelay = time.Second
	return cmd.Run() == nil
}

// maxLine bounds one logged line of a plain program's output; a longer one is logged in
// parts.
const maxLine = 16 << 10

// lineLog turns a plain program's output into log records, one a line, at most LogRate
// a second for each stream (lines over it are counted as dropped logs).
// os/exec feeds it from a goroutine of its own, until the program and every descendant
// holding the stream have closed it.
type lineLog struct {
	stream string
	tee    *tail // the stderr tail, when kept

	mu      sync.Mutex
	bucket  tokenBucket
	log     *slog.Logger // nil until begin: lines wait for it
	stats   *logStats
	ready   chan struct{}
	partial []byte
}

func newLineLog(stream string, rate float64) *lineLog {
	return &lineLog{stream: stream, bucket: tokenBucket{rate: rate, tokens: rate, last: time.Now()}, ready: make(chan struct{})}
}

// begin sets the logger (with the pid once it is known) and lets lines through.
func (l *lineLog) begin(log *slog.Logger, stats *logStats) {
	l.mu.Lock()
	l.log, l.stats = log, stats
	l.mu.Unlock()
	close(l.ready)
}

// Write logs every complete line of b and keeps the rest for the next Write.
func (l *lineLog) Write(b []byte) (int, error) {
	<-l.ready
	if l.tee != nil {
		l.tee.Write(b)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.partial = append(l.partial, b...)
			if len(l.partial) >= maxLine {
				l.emit(l.partial)
				l.partial = l.partial[:0]
			}
			break
		}
		line := b[:i]
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = l.partial[:0]
		}
		l.emit(line)
		b = b[i+1:]
	}
	return n, nil
}

// flush logs what is left without a newline.
func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.emit(l.partial)
		l.partial = nil
	}
}

// emit logs one line, under mu.
func (l *lineLog) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if l.log == nil {
		return
	}
	if !l.bucket.take(time.Now()) {
		if l.stats != nil {
			l.stats.rateDropped.Add(1)
		}
		return
	}
	l.log.Info(string(line), "stream", l.stream)
}

// plainDefaults fills in a plain program's defaults; nothing pings it.
func plainDefaults(cfg Config) Config {
	plain := *cfg.Plain
	if plain.ReadyInterval == 0 {
		plain.ReadyInterval = DefaultReadyInterval
	}
	if plain.StopSignal == 0 {
		plain.StopSignal = syscall.SIGTERM
	}
	cfg.Plain = &plain
	cfg.PingInterval, cfg.PingTimeout, cfg.HighPingThreshold = 0, 0, 0
	return cfg
}

// askToStop asks the process to shut down: a ShutdownRequest, or a plain program's
// StopSignal to its group and cgroup.
func (p *process) askToStop(why string) {
	if p.cfg.Plain != nil {
		p.proc.SignalAll(p.cfg.Plain.StopSignal)
		return
	}
	p.send(&wire.ShutdownRequest{Reason: why})
}
