//go:build linux

package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ExitStatus is how a child ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process, or 0.
	Signal syscall.Signal
	// CPU is the CPU time the process used, user and system, with that of the children
	// it waited for.
	CPU time.Duration
}

// Success reports whether the process exited with code 0.
func (s ExitStatus) Success() bool { return s.Code == 0 && s.Signal == 0 }

// String reads like "exit code 3" or "signal killed".
func (s ExitStatus) String() string {
	if s.Signal != 0 {
		return "signal " + s.Signal.String()
	}
	return fmt.Sprintf("exit code %d", s.Code)
}

// Process is a started child: its pid, the parent's ends of its sockets and its exit.
// Its methods are safe for concurrent use.
type Process struct {
	cmd     *exec.Cmd // nil for a worker a keeper started
	pid     int
	control net.Conn
	logs    net.Conn
	pidfd   *os.File
	started time.Time
	cgroup  *Cgroup // nil when the child has none
	closed  sync.Once

	done    chan struct{} // closed once the process is reaped
	status  ExitStatus
	waitErr error

	mu        sync.Mutex
	afterExit []func(ExitStatus)

	// A worker a keeper started (see Kept) or this program adopted.
	keeper  *Keeper
	keptID  uint64
	note    []byte
	adopted bool
	marks   *Marks
	copiers sync.WaitGroup // copying its captured output
	ended   sync.Once
}

// Pid is the child's process ID, also its process group ID.
func (p *Process) Pid() int { return p.pid }

// StartTime is when the child was started.
func (p *Process) StartTime() time.Time { return p.started }

// Control is the parent's end of the control socket; wrap it with wire.NewReader
// and wire.NewWriter. It is nil for a program started [WithoutProtocol].
func (p *Process) Control() net.Conn { return p.control }

// Logs is the parent's end of the log socket (nil [WithoutProtocol]).
func (p *Process) Logs() net.Conn { return p.logs }

// Done is closed when the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits until the child has exited, or ctx is done, and returns how it ended. Any
// number of goroutines may wait. Waiting holds no OS thread where the kernel has pidfds.
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.waitErr
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// reap waits for the exit on the pidfd (a parked goroutine, no thread), then reaps.
func (p *Process) reap() {
	if p.pidfd != nil {
		waitPidfd(p.pidfd)
		defer p.pidfd.Close() // after the exit is reported: not on its way
		if p.cgroup != nil {
			// The child is gone: so is everything it left in its cgroup, at once, before
			// the wait below for its output streams, which a descendant may hold open.
			writeFile(p.cgroup.dir+"/cgroup.kill", "1")
		}
	}
	err := p.cmd.Wait()
	st := p.cmd.ProcessState
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) || (err != nil && st != nil) {
		err = nil // a non-zero exit is a status, not an error of waiting
	}
	if st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.status = ExitStatus{Code: -1, Signal: ws.Signal()}
		} else {
			p.status = ExitStatus{Code: st.ExitCode()}
		}
		p.status.CPU = st.UserTime() + st.SystemTime()
	}
	p.exit(err)
}

// exit records the end (p.status is set) and calls the AfterExit functions, once.
func (p *Process) exit(err error) {
	p.waitErr = err
	p.mu.Lock()
	fs := p.afterExit
	p.afterExit = nil
	close(p.done)
	p.mu.Unlock()
	for _, f := range fs {
		f(p.status)
	}
}

// AfterExit arranges for f to be called with the exit status once the child is reaped,
// on the goroutine that reaps it (or on a new one, if it was reaped already). f must not
// block. Unlike a goroutine blocked in Wait, it costs nothing while the child runs.
func (p *Process) AfterExit(f func(ExitStatus)) {
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		go f(p.status)
		return
	default:
	}
	p.afterExit = append(p.afterExit, f)
	p.mu.Unlock()
}

// Signal sends sig to the child process alone.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	if p.cmd == nil {
		return pidfdSignal(p.pidfd, sig)
	}
	return p.cmd.Process.Signal(sig)
}

// SignalGroup sends sig to the child's whole process group, its descendants included
// unless they left the group. It is safe after the child was reaped: the group ID cannot
// be reused while any member lives.
func (p *Process) SignalGroup(sig syscall.Signal) error {
	err := syscall.Kill(-p.Pid(), sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// SignalAll sends sig to the child's process group and, when it has a cgroup, to every
// process in the cgroup: a graceful stop reaches the descendants that left the group too.
func (p *Process) SignalAll(sig syscall.Signal) error {
	if p.cgroup != nil {
		p.cgroup.signalProcs(sig)
	}
	return p.SignalGroup(sig)
}

// Kill sends SIGKILL to the child's whole process group, and to its whole cgroup when
// it has one.
func (p *Process) Kill() error {
	if p.cgroup != nil {
		writeFile(p.cgroup.dir+"/cgroup.kill", "1")
	}
	return p.SignalGroup(syscall.SIGKILL)
}

// Cgroup is the child's cgroup, or nil when it was started without one.
func (p *Process) Cgroup() *Cgroup { return p.cgroup }

// KillGroupAndWait sends SIGKILL to the child's process group and waits until no live
// member is left (members that died but are not yet reaped by their parent do not
// count), or ctx is done. Signals are delivered asynchronously: after Kill returns, a
// grandchild may still be running for a moment; after KillGroupAndWait it is not. A
// child with a cgroup has the whole cgroup killed (cgroup.kill) too, and the wait lasts
// until the cgroup is empty: descendants that left the group are gone as well.
func (p *Process) KillGroupAndWait(ctx context.Context) error {
	if p.cgroup != nil {
		if err := p.cgroup.killAndWait(ctx); err != nil {
			return err
		}
	}
	pgid := p.Pid()
	if err := syscall.Kill(-pgid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		if !groupHasLiveMember(pgid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("procsup/childproc: process group %d still has live members: %w", pgid, ctx.Err())
		case <-time.After(delay):
		}
		syscall.Kill(-pgid, syscall.SIGKILL) // a member forked after the first signal
	}
}

// Close closes the parent's ends of the sockets. The child sees end of stream and, if it
// uses [Serve], exits. Close does not wait for the exit. A child's cgroup is removed once
// the child has exited (anything left in it is killed then).
func (p *Process) Close() error {
	var err error
	if p.control != nil { // nil for a program started WithoutProtocol
		err = errors.Join(p.control.Close(), p.logs.Close())
	}
	if p.keeper != nil {
		select {
		case <-p.done:
		default: // the keeper closes its copies too: the child sees the end
			p.keeper.conn.send(&kmsg{T: kmForget, ID: p.keptID})
		}
	}
	if p.cgroup != nil {
		p.closed.Do(func() {
			select {
			case <-p.done: // reaped: the cgroup goes now
				err = errors.Join(err, p.removeCgroup())
			default:
				p.AfterExit(func(ExitStatus) { go p.removeCgroup() })
			}
		})
	}
	return err
}

// removeCgroup kills what is left in the child's cgroup, waits until it is empty and
// removes it.
func (p *Process) removeCgroup() error {
	ctx, cancel := context.WithTimeout(context.Background(), cgroupWait)
	defer cancel()
	if err := p.cgroup.killAndWait(ctx); err != nil {
		return err
	}
	return p.cgroup.remove()
}

// cgroupWait bounds the wait for a killed cgroup to be empty.
const cgroupWait = 10 * time.Second

// Adopted reports whether this program adopted the process from a keeper (see
// [Keeper.Adopt]) rather than started it.
func (p *Process) Adopted() bool { return p.adopted }

// Note is what was noted of the process with its keeper ([Process.SetNote]), as the
// program that adopted it found it; nil for a process no keeper holds.
func (p *Process) Note() []byte { return p.note }

// SetNote has the keeper keep note with the process, for the next program to adopt it
// to read ([Process.Note]): what it needs to take the process over (the state it was
// in, what its handshake agreed). It does nothing for a process no keeper holds.
func (p *Process) SetNote(note []byte) {
	if p.keeper == nil {
		return
	}
	p.note = note
	p.keeper.conn.send(&kmsg{T: kmNote, ID: p.keptID, Note: note})
}

// Marks are the process's stream marks, in memory its keeper holds; nil for a process
// no keeper holds.
func (p *Process) Marks() *Marks { return p.marks }

// keptExit ends a kept process with the status its keeper reported, once its captured
// output is read to its end (at most a second after the exit, as for exec.Cmd.Wait).
func (p *Process) keptExit(st ExitStatus, err error) {
	p.ended.Do(func() {
		if p.cgroup != nil {
			writeFile(p.cgroup.dir+"/cgroup.kill", "1") // what it left behind goes at once
		}
		copied := make(chan struct{})
		go func() { p.copiers.Wait(); close(copied) }()
		select {
		case <-copied:
		case <-time.After(time.Second):
		}
		p.status = st
		if p.pidfd != nil {
			defer p.pidfd.Close()
		}
		p.exit(err)
	})
}

// keeperLost ends a kept process whose keeper died: the parent-death signal kills it
// (and here it is killed all the same); its exit status is not known, and is reported
// as a SIGKILL.
func (p *Process) keeperLost() {
	p.Kill()
	if p.pidfd != nil {
		pollPidfd(p.pidfd)
	}
	p.keptExit(ExitStatus{Code: -1, Signal: syscall.SIGKILL}, nil)
}
