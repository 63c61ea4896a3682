package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

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
	failed := p.then == thenDecide && isFailure(ev.Reason, p.cfg.Restart)
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

// report completes the end's record, logs it, fails pending requests and closes the
// sockets.
func (p *process) report() *messages.Exited {
	p.finished = true
	p.runCancels()
	f := p.facts()
	ev := &messages.Exited{PID: p.self}
	ev.Reason, ev.Err = classify(f)
	if p.proc != nil {
		ev.OSPid = p.proc.Pid()
		ev.ExitCode, ev.Signal = p.status.Code, p.status.Signal
		ev.Killed = f.killed()
		ev.Uptime = time.Since(p.startedAt)
		ev.CPU = p.status.CPU
		if f.cgroupCPU > 0 {
			ev.CPU = f.cgroupCPU // the descendants' too
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
	p.pending.close(fmt.Errorf("%w: %w", ErrProcessEnded, ev.Reason))
	if p.handle != nil {
		p.handle.wake.Close() // after the answers: a caller still waiting on it finds its own
	}
	p.failHeld(fmt.Errorf("%w (the process ended: %w)", ErrNotRunning, ev.Reason))
	return ev
}

// endFacts are what is known of an ending once the process is reaped and its sockets
// are drained: everything classify needs, and nothing else.
type endFacts struct {
	verdict    messages.Reason   // why procsup closed or killed it (ReasonNone: it did not)
	verdictErr error             // the detail of the verdict
	started    bool              // a process was started
	ran        bool              // it initialized: its InitializeResponse was read
	status     launch.ExitStatus // how it exited
	killSent   bool              // procsup sent it a kill
	stackDump  bool              // the kill was a SIGQUIT first (Config.StackDumpGrace)
	eof        bool              // its control socket ended before the exit
	lastWord   *wire.Exiting     // its Exiting, if it sent one
	oomKills   uint64            // processes of its cgroup the OOM killer ended
	cgroupCPU  time.Duration     // the CPU time of its cgroup, when it had one
}

// facts gathers the facts of the ending.
func (p *process) facts() endFacts {
	f := endFacts{verdict: p.reason, verdictErr: p.err, started: p.proc != nil, ran: p.ran,
		status: p.status, killSent: p.killSent, stackDump: p.cfg.StackDumpGrace > 0, eof: p.eof}
	if p.heard != nil {
		f.lastWord = p.heard.lastWord.Load()
		f.ran = f.ran || p.heard.initialized.Load() // its InitializeResponse was read, if not yet handled
		if e := p.heard.initError.Load(); e != nil && f.verdict == messages.ReasonNone && !f.ran {
			// Its failed InitializeResponse was read, and its exit came to the actor first.
			f.verdict, f.verdictErr = messages.ReasonInitFailed, errors.New(*e)
		}
	}
	if p.proc != nil {
		if cg := p.proc.Cgroup(); cg != nil {
			if st, err := cg.Stats(); err == nil {
				f.oomKills, f.cgroupCPU = st.OOMKills, st.CPU
			}
		}
	}
	return f
}

// killed reports whether procsup's kill ended the process (not an exit of its own that
// came first).
func (f endFacts) killed() bool { return killedBy(f.killSent, f.stackDump, f.status) }

// killedBy reports whether procsup's kill, if it sent one, is what ended a process that
// exited with st. A Go child answers the stack dump's SIGQUIT by exiting with code 2.
func killedBy(killSent, stackDump bool, st launch.ExitStatus) bool {
	return killSent && (st.Signal != 0 || (stackDump && st.Code == 2))
}

// classify decides an ending's reason and error from its facts: the one place that does.
// Each rule is a line of the README's "What happens when" table.
func classify(f endFacts) (messages.Reason, error) {
	if !f.started {
		return f.verdict, f.verdictErr // it never ran: start failed, or closed while queued
	}
	killed := f.killed()
	ownExit := f.killSent && !killed // it exited by itself before procsup's kill landed
	reason, err := f.verdict, f.verdictErr
	switch {
	case reason == messages.ReasonNone,
		// Closing its socket on the way out is no protocol error.
		reason == messages.ReasonProtocolError && f.eof && !killed,
		// A verdict whose kill came too late is not why it ended.
		ownExit && (reason == messages.ReasonUnresponsive || reason == messages.ReasonMemoryLimit ||
			reason == messages.ReasonInitTimeout):
		reason, err = messages.ReasonExited, nil
		if !f.status.Success() {
			reason = messages.ReasonCrashed
		}
		if f.lastWord != nil {
			err = &messages.ChildError{Reason: f.lastWord.Reason, Panic: f.lastWord.Panic}
		}
		if !f.ran {
			// Any exit before the InitializeResponse is a failed initialization.
			reason, err = messages.ReasonInitFailed, fmt.Errorf("exited before initializing (%s)", f.status)
		}
	}
	if f.oomKills > 0 && f.status.Signal == syscall.SIGKILL && !killed &&
		(reason == messages.ReasonCrashed || reason == messages.ReasonInitFailed) {
		reason, err = messages.ReasonOOMKilled, fmt.Errorf("%d process(es) of its cgroup killed by the OOM killer", f.oomKills)
	}
	return reason, err
}

// isFailure reports whether an end for reason is a failure under the restart policy:
// one the parent's supervisor strategy decides about.
func isFailure(reason messages.Reason, policy RestartPolicy) bool {
	return !reason.Requested() && policy != Temporary && !(policy == Transient && reason == messages.ReasonExited)
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
	if last := p.heard.lastWord.Load(); last != nil {
		total = last.LogRecords
	}
	n := p.logStats.lost(total)
	if n > 0 {
		p.log.Warn("child log records were lost", "dropped", n)
	}
	return n
}

// killedIt reports whether procsup's kill ended the process.
func (p *process) killedIt() bool {
	return killedBy(p.killSent, p.cfg.StackDumpGrace > 0, p.status)
}

// endAsked answers protoactor's Stop or Restart (through holdEnd): with a process to end,
// the actor takes it over, ends the process by the one ending path (a Close, unless an
// end is under way already) and stops or restarts itself from finish; without one, the
// Stop or Restart goes on now.
func (p *process) endAsked(ctx actor.Context, restart bool) bool {
	if p.proc == nil || p.finished {
		return false
	}
	p.then = thenStop
	if restart { // never after a Stop: the mailbox drops such a Restart (lateInvoker)
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
	if p.handle != nil {
		p.handle.wake.Close()
	}
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

// escalate hands a failure to the parent's supervisor strategy.
func escalate(ctx actor.Context, err error) {
	if s, ok := ctx.(interface{ EscalateFailure(reason, message any) }); ok {
		s.EscalateFailure(err, nil)
		return
	}
	panic(err) // the mailbox turns a panic into the same escalation
}
