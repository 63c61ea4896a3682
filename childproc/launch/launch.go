//go:build linux

package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/procsup/procsup/childproc"
)

// Files are the child's ends of the two socket pairs. A [Launcher] must pass them to the
// child as descriptors 3 (Control) and 4 (Logs) and set [EnvFDs]; [Files.Apply] does all
// of that for an [exec.Cmd].
type Files struct {
	Control *os.File
	Logs    *os.File
	// ParentDeathSignal is the signal the child gets when the parent dies (Linux).
	ParentDeathSignal syscall.Signal
	// Cgroup, when not nil, is the child's cgroup directory, open: the child starts in it
	// (see [InCgroup]).
	Cgroup *os.File
}

// Apply prepares cmd to start a child the way procsup needs: Control and Logs as
// descriptors 3 and 4 (cmd.ExtraFiles must be empty), [EnvFDs] in its environment, its
// own process group, the parent-death signal and, with f.Cgroup, the child's cgroup from
// its first instruction. It keeps cmd's other settings.
func (f Files) Apply(cmd *exec.Cmd) error {
	if f.Control != nil || f.Logs != nil { // nil both for a program without the protocol
		if len(cmd.ExtraFiles) > 0 {
			return fmt.Errorf("%w: ExtraFiles must be empty, descriptors 3 and 4 are procsup's", ErrBadCommand)
		}
		cmd.ExtraFiles = []*os.File{f.Control, f.Logs}
		env := cmd.Env
		if env == nil {
			env = os.Environ()
		}
		cmd.Env = append(env[:len(env):len(env)], childproc.EnvFDs+"=3,4")
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	cmd.SysProcAttr.Pdeathsig = f.ParentDeathSignal
	if f.Cgroup != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(f.Cgroup.Fd())
	}
	return nil
}

// A Launcher starts a child process its own way: in a container, under another user, with
// a wrapper. It must call [Files.Apply] (or do what it does) and return a started command.
// Launch runs on procsup's starter thread (see [Start]), so it must not block for long.
type Launcher interface {
	Launch(ctx context.Context, files Files) (*exec.Cmd, error)
}

// LauncherFunc adapts a function to a [Launcher].
type LauncherFunc func(ctx context.Context, files Files) (*exec.Cmd, error)

// Launch calls f.
func (f LauncherFunc) Launch(ctx context.Context, files Files) (*exec.Cmd, error) {
	return f(ctx, files)
}

// Command describes a child program to start. It is the usual [Launcher].
type Command struct {
	// Path is the program: a path, or a name looked up in PATH.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the environment; nil means the parent's. [EnvFDs] is added.
	Env []string
	// Dir is the working directory; empty means the parent's.
	Dir string
	// Stdout and Stderr receive the child's output; nil discards it. An *os.File is
	// handed to the child as it is; any other writer is fed by a goroutine.
	Stdout, Stderr io.Writer
	// ParentDeathSignal is sent to the child when the parent dies; 0 means SIGKILL.
	ParentDeathSignal syscall.Signal
}

// String is the program and its arguments, as a person reads them.
func (c *Command) String() string {
	return strings.Join(append([]string{c.Path}, c.Args...), " ")
}

// Launch starts the command.
func (c *Command) Launch(ctx context.Context, files Files) (*exec.Cmd, error) {
	if c == nil || c.Path == "" {
		return nil, fmt.Errorf("%w: no program path", ErrBadCommand)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env, cmd.Dir = c.Env, c.Dir
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	cmd.WaitDelay = time.Second // a grandchild holding stdout open must not stall Wait
	if c.ParentDeathSignal != 0 {
		files.ParentDeathSignal = c.ParentDeathSignal
	}
	if err := files.Apply(cmd); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// Start makes the control and log socket pairs, has launcher start the child with its
// ends, closes those ends in the parent and returns the running [Process]. Every parent
// descriptor is close-on-exec, so the child and its descendants inherit only 3 and 4.
//
// Every child is started from one goroutine locked to its OS thread for the life of the
// program: the parent-death signal follows the thread that forked the child, and this
// way that thread never ends.
//
// On failure nothing is left open and the error is a [*StartError] (or wraps
// [ErrBadCommand]).
func Start(ctx context.Context, launcher Launcher, opts ...Option) (*Process, error) {
	if launcher == nil {
		return nil, fmt.Errorf("%w: nil launcher", ErrBadCommand)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.keeper != nil {
		c, ok := launcher.(*Command)
		if !ok || c == nil || c.Path == "" {
			return nil, fmt.Errorf("%w: a kept child needs a *Command with a Path", ErrBadCommand)
		}
		if o.cgroups != nil {
			if err := o.cgroups.Check(o.limits); err != nil {
				return nil, &StartError{Path: c.Path, Err: err}
			}
		}
		return o.keeper.spawn(ctx, c, &o)
	}
	var cg *Cgroup
	if o.cgroups != nil {
		var err error
		if cg, err = o.cgroups.newChild(o.name, o.limits); err != nil {
			return nil, &StartError{Path: launcherPath(launcher), Err: err}
		}
	}
	p, err := start(ctx, launcher, cg, o.plain)
	if cg != nil {
		cg.fd.Close() // the child is in it, or never will be
		cg.fd = nil
		if err != nil {
			cg.remove()
		}
	}
	return p, err
}

// An Option changes how [Start] starts a child.
type Option func(*options)

type options struct {
	cgroups *Cgroups
	name    string
	limits  CgroupLimits
	plain   bool

	keeper   *Keeper // see Kept
	keptName string
	keptNote []byte
	keptStop syscall.Signal
}

// WithoutProtocol starts a program that does not speak procsup's protocol (ffmpeg, a
// script, a server): no socket pairs, no descriptors 3 and 4, no [EnvFDs]. The
// Process's Control and Logs are nil.
func WithoutProtocol() Option {
	return func(o *options) { o.plain = true }
}

// InCgroup starts the child in a cgroup of its own in cg, named for name (an actor's
// name, say), with limits. See [Cgroups].
func InCgroup(cg *Cgroups, name string, limits CgroupLimits) Option {
	return func(o *options) { o.cgroups, o.name, o.limits = cg, name, limits }
}

func start(ctx context.Context, launcher Launcher, cg *Cgroup, plain bool) (*Process, error) {
	var ctrlParent, ctrlChild, logParent, logChild *os.File // nil without the protocol
	if !plain {
		var err error
		if ctrlParent, ctrlChild, err = socketPair("control"); err != nil {
			return nil, &StartError{Path: launcherPath(launcher), Err: err}
		}
		if logParent, logChild, err = socketPair("logs"); err != nil {
			ctrlParent.Close()
			ctrlChild.Close()
			return nil, &StartError{Path: launcherPath(launcher), Err: err}
		}
	}
	var cmd *exec.Cmd
	var err error
	files := Files{Control: ctrlChild, Logs: logChild, ParentDeathSignal: syscall.SIGKILL}
	if cg != nil {
		files.Cgroup = cg.fd
	}
	onStarterThread(func() {
		cmd, err = launcher.Launch(ctx, files)
	})
	ctrlChild.Close()
	logChild.Close()
	if err == nil && (cmd == nil || cmd.Process == nil) {
		err = errors.New("launcher returned no started command")
	}
	if err != nil {
		ctrlParent.Close()
		logParent.Close()
		if errors.Is(err, ErrBadCommand) {
			return nil, err
		}
		return nil, &StartError{Path: launcherPath(launcher), Err: err}
	}
	// Started: the environment (a copy of the program's, kilobytes) and the child's ends
	// are of no more use, and a parent may hold thousands of these commands.
	cmd.Env, cmd.ExtraFiles = nil, nil
	var control, logs net.Conn
	var err1, err2 error
	if !plain {
		control, err1 = fileConn(ctrlParent)
		logs, err2 = fileConn(logParent)
	}
	if err := errors.Join(err1, err2); err != nil {
		// Cannot happen with a socket pair; do not leave the child behind if it does.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if cg != nil {
			cg.killAndWait(context.Background())
		}
		cmd.Wait()
		for _, c := range []net.Conn{control, logs} {
			if c != nil {
				c.Close()
			}
		}
		return nil, &StartError{Path: launcherPath(launcher), Err: err}
	}
	p := &Process{
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		control: control,
		logs:    logs,
		pidfd:   openPidfd(cmd.Process.Pid),
		cgroup:  cg,
		started: time.Now(),
		done:    make(chan struct{}),
	}
	go p.reap()
	return p, nil
}

func launcherPath(l Launcher) string {
	if c, ok := l.(*Command); ok && c != nil {
		return c.Path
	}
	if s, ok := l.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", l)
}

// socketPair returns both ends of an AF_UNIX stream socket pair, close-on-exec.
func socketPair(name string) (parent, child *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), name+"-parent"), os.NewFile(uintptr(fds[1]), name+"-child"), nil
}

// fileConn turns f into a net.Conn read through the netpoller, and closes f.
func fileConn(f *os.File) (net.Conn, error) {
	defer f.Close()
	return net.FileConn(f)
}
