//go:build linux

package python

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/vmihailenco/msgpack/v5"
)

var (
	// ErrForkserverStart: the fork server did not come up (procsup_child or a preloaded
	// module could not be imported, say); the error says why.
	ErrForkserverStart = errors.New("procsup/python: the fork server did not start")
	// ErrForkserverGone: the fork server was closed, died, or stopped answering.
	ErrForkserverGone = errors.New("procsup/python: the fork server is gone")
	// ErrForkFailed: the fork server could not fork or set up a worker; the error says
	// why.
	ErrForkFailed = errors.New("procsup/python: fork failed")
)

// ForkTimeout bounds one fork when the caller's ctx has no earlier deadline. A fork
// server that does not answer within it is killed.
const ForkTimeout = 30 * time.Second

// maxReply bounds what the fork server may send in one packet; maxRequest what it
// reads of one (procsup_child.forkserver's MAX_REQUEST).
const (
	maxReply   = 64 << 10
	maxRequest = 1 << 20
)

// ForkserverOptions configure [StartForkserver].
type ForkserverOptions struct {
	// Interpreter is the python3 to run; empty means [Interpreter]'s choice.
	Interpreter string
	// Path are directories put first on the fork server's module path (PYTHONPATH),
	// and so on its workers': where procsup_child is when it is not installed, and the
	// workers' own modules.
	Path []string
	// Preload are modules the fork server imports once, before its first fork, so that
	// every worker starts with them imported (a model's libraries, say). They must start
	// no thread.
	Preload []string
	// Env is the fork server's environment; nil means the program's. A worker's is its
	// [Script]'s.
	Env []string
	// Stderr receives what the fork server itself writes there; nil discards it.
	Stderr io.Writer
}

// Forkserver is a Python interpreter that has imported procsup's runtime, and the
// modules its options preload, once, and starts each worker by forking itself: see
// [Script]. A worker it starts is a child of this program, as if the program had
// started it: the program reaps it and signals it, and it dies with the program. It
// does not depend on the fork server after its start: closing the fork server, or its
// death, ends no worker.
//
// Its methods are safe for concurrent use.
type Forkserver struct {
	python string
	proc   *launch.Process

	mu     sync.Mutex // one exchange at a time
	conn   *net.UnixConn
	null   *os.File
	closed bool
}

// StartForkserver starts a fork server and waits, within ctx, until it is ready. Its
// errors match [ErrNoInterpreter], [ErrForkserverStart] or ctx's error.
func StartForkserver(ctx context.Context, opts ForkserverOptions) (*Forkserver, error) {
	py := opts.Interpreter
	if py == "" {
		var err error
		if py, err = Interpreter(); err != nil {
			return nil, err
		}
	}
	for _, m := range opts.Preload {
		if m == "" || strings.ContainsAny(m, " /\x00") || strings.HasPrefix(m, "-") {
			return nil, fmt.Errorf("%w: %q is not a module name", ErrForkserverStart, m)
		}
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	ours, theirs, err := packetPair()
	if err != nil {
		null.Close()
		return nil, err
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	env = withPath(env, opts.Path)
	args := append([]string{"-m", "procsup_child.forkserver", "3"}, opts.Preload...)
	proc, err := launch.Start(ctx, launch.LauncherFunc(func(ctx context.Context, files launch.Files) (*exec.Cmd, error) {
		cmd := exec.Command(py, args...)
		cmd.Env, cmd.Stderr, cmd.ExtraFiles = env, opts.Stderr, []*os.File{theirs}
		if err := files.Apply(cmd); err != nil {
			return nil, err
		}
		return cmd, cmd.Start()
	}), launch.WithoutProtocol())
	theirs.Close()
	if err != nil {
		ours.Close()
		null.Close()
		return nil, err
	}
	f := &Forkserver{python: py, proc: proc, null: null}
	if f.conn, err = unixConn(ours); err == nil {
		var hello reply
		if hello, err = f.exchange(ctx, nil, nil); err == nil && (hello.Error != "" || hello.Ready != 1) {
			err = fmt.Errorf("%w: %s", ErrForkserverStart, cmp.Or(hello.Error, "it did not say it was ready"))
		}
	}
	if err != nil {
		f.kill()
		if !errors.Is(err, ErrForkserverStart) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %v", ErrForkserverStart, err)
		}
		return nil, err
	}
	return f, nil
}

// Pid is the fork server's process ID.
func (f *Forkserver) Pid() int { return f.proc.Pid() }

// Done is closed once the fork server has exited and been reaped.
func (f *Forkserver) Done() <-chan struct{} { return f.proc.Done() }

// Close ends the fork server and waits until it has exited; the workers it started go
// on. Later starts fail with [ErrForkserverGone].
func (f *Forkserver) Close() error {
	f.mu.Lock()
	f.shut() // the fork server exits at the end of its socket
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.proc.Wait(ctx); err != nil {
		f.end()
	}
	return nil
}

// shut closes the fork server's socket, once; f.mu is held.
func (f *Forkserver) shut() {
	if f.closed {
		return
	}
	f.closed = true
	if f.conn != nil {
		f.conn.Close()
	}
	f.null.Close()
}

// kill ends the fork server at once, as broken.
func (f *Forkserver) kill() {
	f.mu.Lock()
	f.shut()
	f.mu.Unlock()
	f.end()
}

// end kills the fork server's process and waits until it is reaped.
func (f *Forkserver) end() {
	f.proc.Kill()
	f.proc.Wait(context.Background())
}

// reply is any packet the fork server sends.
type reply struct {
	Ready   int    `msgpack:"ready"`
	Version int    `msgpack:"version"`
	Pid     int    `msgpack:"pid"`
	Error   string `msgpack:"error"`
}

// forkRequest asks for a worker.
type forkRequest struct {
	Script    string   `msgpack:"script"`
	Args      []string `msgpack:"args"`
	Env       []string `msgpack:"env"`
	Dir       string   `msgpack:"dir"`
	Pdeathsig int      `msgpack:"pdeathsig"`
	FDs       []string `msgpack:"fds"`
}

// exchange sends req with fds (nothing when req is nil) and reads the one reply, within
// ctx and ForkTimeout. A fork server that fails an exchange is killed: its next
// answer could not be told from this one's.
func (f *Forkserver) exchange(ctx context.Context, req []byte, fds []int) (reply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return reply{}, ErrForkserverGone
	}
	deadline := time.Now().Add(ForkTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	f.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { f.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var r reply
	err := func() error {
		if req != nil {
			if _, _, err := f.conn.WriteMsgUnix(req, syscall.UnixRights(fds...), nil); err != nil {
				return err
			}
		}
		buf := make([]byte, maxReply)
		n, _, flags, _, err := f.conn.ReadMsgUnix(buf, nil)
		switch {
		case err != nil:
			return err
		case n == 0:
			return io.EOF
		case flags&syscall.MSG_TRUNC != 0:
			return fmt.Errorf("a reply over %d bytes", maxReply)
		}
		if err := msgpack.Unmarshal(buf[:n], &r); err != nil {
			return fmt.Errorf("a malformed reply: %w", err)
		}
		return nil
	}()
	if err == nil {
		return r, nil
	}
	f.shut()
	go f.end() // not on the caller's thread (a start's): the fork server may take a moment to die
	if ctx.Err() != nil {
		return reply{}, ctx.Err()
	}
	return reply{}, fmt.Errorf("%w: %v", ErrForkserverGone, err)
}

// Script returns a [launch.Launcher] that starts script with args as a worker forked by
// f, in the program's environment; its fields may be changed before it is used.
func (f *Forkserver) Script(script string, args ...string) *Script {
	return &Script{Forkserver: f, Path: script, Args: args}
}

// Script is a Python worker started by a [Forkserver]: it runs as
// "python3 Path Args..." would, as __main__, with its Env, in Dir. It is a
// [launch.Launcher]: use it in place of a [launch.Command] (actors.Config.Launcher).
// A keeper (launch.Kept) cannot start it.
type Script struct {
	Forkserver *Forkserver
	// Path is the script; relative to Dir when Dir is set.
	Path string
	// Args are the arguments after the script.
	Args []string
	// Env is the worker's environment; nil means the program's. PROCSUP_FDS is added.
	Env []string
	// Dir is the worker's working directory; empty means the fork server's (the
	// program's when it started the fork server).
	Dir string
	// Stdout and Stderr receive the worker's output; nil discards it.
	Stdout, Stderr *os.File
}

// String is the worker as a person reads it.
func (s *Script) String() string {
	if s == nil {
		return "python3 (nil Script)"
	}
	return strings.Join(append([]string{"python3", s.Path}, s.Args...), " ")
}

// Launch asks the fork server for the worker, with the control and log sockets, the
// parent-death signal and the cgroup of files, and returns it started. A worker forked
// when ctx has ended is killed. Its errors match
// launch.ErrBadCommand, [ErrForkFailed], [ErrForkserverGone], fs.ErrNotExist for a
// script that is not there, or ctx's error.
func (s *Script) Launch(ctx context.Context, files launch.Files) (*exec.Cmd, error) {
	if s == nil || s.Forkserver == nil || s.Path == "" {
		return nil, fmt.Errorf("%w: a Script needs a Forkserver and a Path", launch.ErrBadCommand)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := s.Path
	if s.Dir != "" && !filepath.IsAbs(path) {
		path = filepath.Join(s.Dir, path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	f := s.Forkserver
	req := forkRequest{Script: s.Path, Args: s.Args, Env: s.Env, Dir: s.Dir, Pdeathsig: int(files.ParentDeathSignal)}
	if req.Env == nil {
		req.Env = os.Environ()
	}
	var fds []int
	pass := func(name string, file *os.File) {
		req.FDs = append(req.FDs, name)
		fds = append(fds, int(file.Fd()))
	}
	if files.Control != nil {
		pass("control", files.Control)
		pass("logs", files.Logs)
		req.Env = append(req.Env[:len(req.Env):len(req.Env)], childproc.EnvFDs+"=3,4")
	}
	f.mu.Lock()
	null := f.null
	if !f.closed {
		pass("stdout", cmp.Or(s.Stdout, null))
		pass("stderr", cmp.Or(s.Stderr, null))
	}
	f.mu.Unlock()
	if files.Cgroup != nil {
		pass("cgroup", files.Cgroup)
	}
	body, err := msgpack.Marshal(&req)
	if err != nil {
		return nil, err
	}
	if len(body) > maxRequest {
		return nil, fmt.Errorf("%w: the worker's arguments and environment take %d bytes, over %d", launch.ErrBadCommand, len(body), maxRequest)
	}
	// A fork takes milliseconds: the exchange is bounded by ForkTimeout alone, so that a
	// ctx that ends meanwhile does not cost every later start its fork server.
	r, err := f.exchange(context.WithoutCancel(ctx), body, fds)
	if err != nil {
		return nil, err
	}
	if r.Error != "" || r.Pid <= 0 || ctx.Err() != nil {
		if r.Pid > 0 { // it has exited or will at once (its socket ends are closed): reap it
			syscall.Kill(r.Pid, syscall.SIGKILL)
			go func() {
				var ws syscall.WaitStatus
				syscall.Wait4(r.Pid, &ws, 0, nil)
			}()
		}
		if r.Error == "" && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s", ErrForkFailed, cmp.Or(r.Error, "no pid in the reply"))
	}
	proc, err := os.FindProcess(r.Pid)
	if err != nil {
		return nil, err
	}
	return &exec.Cmd{Path: f.python, Args: slices.Concat([]string{f.python, s.Path}, s.Args), Process: proc}, nil
}

// packetPair returns both ends of an AF_UNIX SOCK_SEQPACKET pair, close-on-exec.
func packetPair() (ours, theirs *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "forkserver"), os.NewFile(uintptr(fds[1]), "forkserver-child"), nil
}

// unixConn turns f into a *net.UnixConn and closes f.
func unixConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("a %T, not a unix socket", c)
	}
	return uc, nil
}

// withPath puts dirs first on env's PYTHONPATH.
func withPath(env, dirs []string) []string {
	if len(dirs) == 0 {
		return env
	}
	path := strings.Join(dirs, string(os.PathListSeparator))
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if rest, ok := strings.CutPrefix(kv, "PYTHONPATH="); ok {
			if rest != "" {
				path += string(os.PathListSeparator) + rest
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PYTHONPATH="+path)
}
