//go:build linux

package launch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of a keeper.
const (
	// DefaultAdoptWithin is how long a keeper keeps its workers with no supervising
	// program connected: shorter than a child's silence rule (its ping timeout, 60 s by
	// default, plus childproc.DefaultSilenceGrace), so that the workers are still there
	// for the next supervisor to adopt.
	DefaultAdoptWithin = 30 * time.Second
	// DefaultEndGrace is how long a worker the keeper ends (nobody came, or it was not
	// adopted) has to exit before it is killed.
	DefaultEndGrace = 5 * time.Second
	// DefaultClaimWithin is how long after OpenKeeper the workers of earlier programs
	// wait to be adopted before they are ended.
	DefaultClaimWithin = 10 * time.Second
)

// ErrNoOrphan is [Keeper.Adopt]'s error when the keeper has no live worker of that name.
var ErrNoOrphan = errors.New("procsup/launch: no worker of that name to adopt")

// ErrBadKeeper is matched by the errors of [OpenKeeper] for a bad name or directory.
var ErrBadKeeper = errors.New("procsup/launch: bad keeper")

// KeeperOptions configure [OpenKeeper]. The zero value is usable.
type KeeperOptions struct {
	// Dir holds the keeper's socket; it is made with mode 0700 and must belong to this
	// user. "" means $XDG_RUNTIME_DIR/procsup, or /tmp/procsup-<uid> without it.
	Dir string
	// AdoptWithin is how long the keeper keeps its workers while no supervising program
	// is connected, before it ends them and exits; 0 means [DefaultAdoptWithin]. The
	// last program to connect sets it.
	AdoptWithin time.Duration
	// EndGrace is how long a worker the keeper ends has to exit before it is killed; 0
	// means [DefaultEndGrace].
	EndGrace time.Duration
	// ClaimWithin is how long after OpenKeeper the workers of earlier programs wait to be
	// adopted ([Keeper.Adopt]); then those left are ended ([Keeper.EndOrphans]): a worker
	// whose name this program no longer supervises goes. 0 means [DefaultClaimWithin].
	ClaimWithin time.Duration
	// Logger hears what the keeper connection does; nil means slog.Default().
	Logger *slog.Logger
}

// A Keeper is this program's connection to a keeper: a small process that starts the
// workers (see [Kept]) and outlives this program, so that the next program to open a
// keeper of the same name finds them running and adopts them ([Keeper.Adopt]) instead
// of starting them again. The keeper is the workers' parent: it reaps them and reports
// each exit here; the workers' sockets are handed to this program, so requests go
// straight to them. When no program is connected for AdoptWithin, the keeper ends its
// workers and exits; when the keeper dies, its workers die with it.
//
// A Keeper is safe for concurrent use.
type Keeper struct {
	name string
	path string
	opts KeeperOptions
	conn *kconn
	pid  int
	log  *slog.Logger

	mu      sync.Mutex
	seq     uint64
	calls   map[uint64]chan keeperAnswer
	procs   map[uint64]*Process
	orphans map[string][]*orphan
	closing bool
	marks   marksPage
	err     error // why the connection ended
	done    chan struct{}
}

type keeperAnswer struct {
	m     *kmsg
	files []*os.File
	err   error
}

// orphan is a live worker of an earlier supervisor, not adopted yet.
type orphan struct {
	m     *kmsg
	files []*os.File
}

// Orphan describes a live worker of an earlier supervising program that the keeper
// holds for adoption.
type Orphan struct {
	Name    string    // the name it was started under
	Pid     int       // its process ID
	Started time.Time // when it was started
	Note    []byte    // what its supervisor last noted of it ([Process.SetNote])
}

var keeperName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// OpenKeeper connects to the keeper called name, starting it if none runs (this program
// run again, caught by this package's init before main), and learns of the workers it
// holds: [Keeper.Orphans]. Only processes of this user can connect. An error matches
// [ErrKeeperBusy] when another program is connected to it, [ErrKeeperVersion] when it
// speaks another protocol version, [ErrBadKeeper] for a bad name or directory.
func OpenKeeper(ctx context.Context, name string, opts KeeperOptions) (*Keeper, error) {
	if !keeperName.MatchString(name) {
		return nil, fmt.Errorf("%w: name %q (letters, digits, '.', '_' and '-', at most 64)", ErrBadKeeper, name)
	}
	if opts.AdoptWithin < 0 || opts.EndGrace < 0 || opts.ClaimWithin < 0 {
		return nil, fmt.Errorf("%w: a negative duration", ErrBadKeeper)
	}
	if opts.AdoptWithin == 0 {
		opts.AdoptWithin = DefaultAdoptWithin
	}
	if opts.EndGrace == 0 {
		opts.EndGrace = DefaultEndGrace
	}
	if opts.ClaimWithin == 0 {
		opts.ClaimWithin = DefaultClaimWithin
	}
	dir, err := keeperDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	k := &Keeper{name: name, path: filepath.Join(dir, name+".sock"), opts: opts, log: opts.Logger,
		calls: map[uint64]chan keeperAnswer{}, procs: map[uint64]*Process{}, orphans: map[string][]*orphan{},
		done: make(chan struct{})}
	if k.log == nil {
		k.log = slog.Default()
	}
	k.log = k.log.With("keeper", name)
	c, err := k.dial(ctx, dir)
	if err != nil {
		return nil, err
	}
	k.conn = &kconn{c: c}
	if err := k.hello(); err != nil {
		c.Close()
		return nil, err
	}
	go k.read()
	if len(k.orphans) > 0 {
		k.log.Info("keeper holds workers of an earlier program", "workers", len(k.Orphans()), "claim_within", opts.ClaimWithin)
		time.AfterFunc(opts.ClaimWithin, func() {
			if n := k.EndOrphans(0); n > 0 {
				k.log.Warn("ended the workers nobody adopted", "workers", n)
			}
		})
	}
	return k, nil
}

// keeperDir makes (or checks) the directory of keepers' sockets.
func keeperDir(dir string) (string, error) {
	if dir == "" {
		if run := os.Getenv("XDG_RUNTIME_DIR"); run != "" {
			dir = filepath.Join(run, "procsup")
		} else {
			dir = filepath.Join(os.TempDir(), fmt.Sprintf("procsup-%d", os.Getuid()))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadKeeper, err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadKeeper, err)
	}
	if int(st.Uid) != os.Getuid() || st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Mode&0o077 != 0 {
		return "", fmt.Errorf("%w: %s must be a directory of user %d that others cannot reach (mode 0700)", ErrBadKeeper, dir, os.Getuid())
	}
	return dir, nil
}

// dial connects to the keeper, starting it first if none listens. A lock file keeps two
// programs from starting two keepers of one name.
func (k *Keeper) dial(ctx context.Context, dir string) (*net.UnixConn, error) {
	if c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: k.path, Net: "unixpacket"}); err == nil {
		return c, nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, k.name+".lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKeeper, err)
	}
	defer lock.Close()
	for {
		err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK {
			return nil, fmt.Errorf("%w: locking %s: %v", ErrBadKeeper, lock.Name(), err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: k.path, Net: "unixpacket"}); err == nil {
		return c, nil // another program started it meanwhile
	}
	os.Remove(k.path) // a keeper that died left it
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: k.path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("procsup/launch: keeper socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the keeper's from now on
	lnFile, err := ln.File()
	ln.Close()
	if err != nil {
		return nil, err
	}
	defer lnFile.Close()
	cmd := exec.Command("/proc/self/exe") // this program, even if its file was replaced
	cmd.Args = []string{"procsup-keeper", k.name}
	cmd.Env = append(os.Environ(), envKeeper+"="+k.name, envKeeperWithin+"="+k.opts.AdoptWithin.String())
	cmd.ExtraFiles = []*os.File{lnFile}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal's signal reaches it
	if err := cmd.Start(); err != nil {
		os.Remove(k.path)
		return nil, fmt.Errorf("procsup/launch: starting the keeper: %w", err)
	}
	go cmd.Wait() // reaps it, should it end while this program lives
	k.log.Info("keeper started", "pid", cmd.Process.Pid)
	return net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: k.path, Net: "unixpacket"})
}

// hello introduces this program and reads the workers the keeper holds.
func (k *Keeper) hello() error {
	if err := k.conn.send(&kmsg{T: kmHello, Pid: os.Getpid(), Within: int64(k.opts.AdoptWithin)}); err != nil {
		return fmt.Errorf("%w: %v", ErrKeeperGone, err)
	}
	for {
		m, files, err := k.conn.recv()
		if err != nil {
			if errors.Is(err, ErrKeeperVersion) {
				return err
			}
			return fmt.Errorf("%w: %v", ErrKeeperGone, err)
		}
		switch m.T {
		case kmRefused:
			if strings.Contains(m.Err, ErrKeeperVersion.Error()) {
				return fmt.Errorf("%w: %s", ErrKeeperVersion, m.Err)
			}
			return fmt.Errorf("%w: %s", ErrKeeperBusy, m.Err)
		case kmWelcome:
			k.pid = m.Pid
			if f := takeFile(&files, fdMarks); f != nil {
				k.marks, err = mapMarks(f)
				f.Close()
				if err != nil {
					closeFiles(files)
					return err
				}
			}
			closeFiles(files)
		case kmWorker:
			k.orphans[m.Name] = append(k.orphans[m.Name], &orphan{m: m, files: files})
		case kmReady:
			return nil
		default:
			closeFiles(files)
		}
	}
}

// read reads the keeper's messages until the connection ends.
func (k *Keeper) read() {
	var err error
	for {
		var m *kmsg
		var files []*os.File
		m, files, err = k.conn.recv()
		if err != nil {
			break
		}
		switch m.T {
		case kmSpawned, kmFailed:
			k.mu.Lock()
			ch := k.calls[m.Seq]
			delete(k.calls, m.Seq)
			k.mu.Unlock()
			if ch == nil {
				closeFiles(files)
				continue
			}
			ch <- keeperAnswer{m: m, files: files}
		case kmExit:
			k.mu.Lock()
			p := k.procs[m.ID]
			delete(k.procs, m.ID)
			for name, list := range k.orphans {
				k.orphans[name] = slices.DeleteFunc(list, func(o *orphan) bool {
					if o.m.ID == m.ID {
						closeFiles(o.files)
						return true
					}
					return false
				})
			}
			k.mu.Unlock()
			closeFiles(files)
			if p != nil {
				go p.keptExit(m.Exit.status(), nil)
			}
		default:
			closeFiles(files)
		}
	}
	k.mu.Lock()
	closing := k.closing
	if !closing {
		k.err = fmt.Errorf("%w: %v", ErrKeeperGone, err)
	} else {
		k.err = ErrKeeperGone
	}
	calls, procs := k.calls, k.procs
	k.calls, k.procs = map[uint64]chan keeperAnswer{}, map[uint64]*Process{}
	for _, list := range k.orphans {
		for _, o := range list {
			closeFiles(o.files)
		}
	}
	k.orphans = map[string][]*orphan{}
	close(k.done)
	k.mu.Unlock()
	for _, ch := range calls {
		ch <- keeperAnswer{err: k.err}
	}
	if closing {
		return // handed over: the workers live on without this program
	}
	k.log.Error("the keeper is gone: its workers die with it", "error", err, "workers", len(procs))
	for _, p := range procs {
		go p.keeperLost()
	}
}

// Name is the keeper's name.
func (k *Keeper) Name() string { return k.name }

// Pid is the keeper's process ID.
func (k *Keeper) Pid() int { return k.pid }

// Done is closed when the connection to the keeper has ended: [Keeper.Close], or the
// keeper died (its workers die with it; their Processes report a SIGKILL).
func (k *Keeper) Done() <-chan struct{} { return k.done }

// Err says why the connection ended, once Done is closed; it matches [ErrKeeperGone].
func (k *Keeper) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Orphans lists the live workers of earlier programs not adopted yet.
func (k *Keeper) Orphans() []Orphan {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []Orphan
	for _, list := range k.orphans {
		for _, o := range list {
			out = append(out, Orphan{Name: o.m.Name, Pid: o.m.Pid, Started: time.Unix(0, o.m.Started), Note: o.m.Note})
		}
	}
	slices.SortFunc(out, func(a, b Orphan) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Adopt takes over the live worker started under name by an earlier program: the
// returned Process is its own, with its pid, sockets and cgroup, and this program learns
// of its exit from the keeper. stdout and stderr receive what it writes there, when it
// was started with its output captured (a writer that is not an *os.File); nil discards.
// Of several workers of one name (a start the earlier program had not finished), the
// latest is adopted and the others are ended. The error is [ErrNoOrphan] when there is
// none.
func (k *Keeper) Adopt(name string, stdout, stderr io.Writer) (*Process, error) {
	k.mu.Lock()
	list := k.orphans[name]
	delete(k.orphans, name)
	k.mu.Unlock()
	if len(list) == 0 {
		return nil, ErrNoOrphan
	}
	slices.SortFunc(list, func(a, b *orphan) int { return cmp.Compare(a.m.ID, b.m.ID) })
	for _, o := range list[:len(list)-1] {
		k.end(o.m.ID, o.files, k.opts.EndGrace)
	}
	o := list[len(list)-1]
	p, err := k.keptProcess(o.m, o.files, [2]io.Writer{stdout, stderr})
	if err != nil {
		return nil, err
	}
	p.adopted = true
	return p, nil
}

// EndOrphans ends every worker not adopted yet, gracefully (a protocol worker sees the
// end of its sockets, a plain program gets SIGTERM) and killed after grace (0 means the
// keeper's EndGrace). It returns how many it ends.
func (k *Keeper) EndOrphans(grace time.Duration) int {
	if grace <= 0 {
		grace = k.opts.EndGrace
	}
	k.mu.Lock()
	all := k.orphans
	k.orphans = map[string][]*orphan{}
	k.mu.Unlock()
	n := 0
	for _, list := range all {
		for _, o := range list {
			k.end(o.m.ID, o.files, grace)
			n++
		}
	}
	return n
}

// end closes this program's copies of worker id's descriptors, files, and has the
// keeper end it: gracefully, then killed after grace.
func (k *Keeper) end(id uint64, files []*os.File, grace time.Duration) {
	closeFiles(files)
	k.conn.send(&kmsg{T: kmEnd, ID: id, Grace: int64(grace)})
}

// Close ends this program's connection to the keeper and hands its workers over: they
// go on running for the next program to adopt, for AdoptWithin. This program's Processes
// learn of no exit after it. A program that ends without Close hands them over too.
func (k *Keeper) Close() error {
	k.mu.Lock()
	k.closing = true
	k.mu.Unlock()
	err := k.conn.c.Close()
	<-k.done
	return err
}

// spawn has the keeper start c as a worker named name.
func (k *Keeper) spawn(ctx context.Context, c *Command, o *options) (*Process, error) {
	path := c.Path
	if !strings.Contains(path, "/") {
		lp, err := exec.LookPath(path)
		if err != nil {
			return nil, &StartError{Path: c.Path, Err: err}
		}
		path = lp
	}
	if !filepath.IsAbs(path) {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	m := &kmsg{T: kmSpawn, Name: o.keptName, Note: o.keptNote, Path: path, Args: c.Args, Env: env, Dir: c.Dir,
		Plain: o.plain, Grace: int64(k.opts.EndGrace), Stop: int(o.keptStop)}
	var fds []int
	var writers [2]io.Writer
	for i, w := range []io.Writer{c.Stdout, c.Stderr} {
		switch f := w.(type) {
		case nil:
			m.Outs = append(m.Outs, "")
		case *os.File:
			m.Outs = append(m.Outs, "file")
			m.Fds = append(m.Fds, []string{fdStdout, fdStderr}[i])
			fds = append(fds, fdOf(f))
		default:
			m.Outs = append(m.Outs, "pipe")
			writers[i] = w
		}
	}
	if o.cgroups != nil {
		m.CgDir = o.cgroups.Dir()
		m.Limits = wireLimits(o.limits)
	}
	ch := make(chan keeperAnswer, 1)
	k.mu.Lock()
	if k.err != nil {
		err := k.err
		k.mu.Unlock()
		return nil, &StartError{Path: c.Path, Err: err}
	}
	k.seq++
	m.Seq = k.seq
	k.calls[m.Seq] = ch
	k.mu.Unlock()
	if err := k.conn.send(m, fds...); err != nil {
		k.mu.Lock()
		delete(k.calls, m.Seq)
		k.mu.Unlock()
		return nil, &StartError{Path: c.Path, Err: err}
	}
	var a keeperAnswer
	select {
	case a = <-ch:
	case <-ctx.Done():
		// The keeper answers all the same: whatever it started is ended then.
		go func() {
			if a := <-ch; a.err == nil && a.m.T == kmSpawned {
				k.end(a.m.ID, a.files, k.opts.EndGrace)
			}
		}()
		return nil, ctx.Err()
	}
	if a.err != nil {
		return nil, &StartError{Path: c.Path, Err: a.err}
	}
	if a.m.T == kmFailed {
		return nil, &StartError{Path: c.Path, Err: errors.New(a.m.Err)}
	}
	return k.keptProcess(a.m, a.files, writers)
}

// keptProcess makes the Process of a worker the keeper holds, from its descriptors.
func (k *Keeper) keptProcess(m *kmsg, files []*os.File, writers [2]io.Writer) (*Process, error) {
	p := &Process{pid: m.Pid, started: time.Unix(0, m.Started), done: make(chan struct{}), keeper: k, keptID: m.ID,
		note: m.Note}
	fail := func(err error) (*Process, error) {
		for _, c := range []net.Conn{p.control, p.logs} {
			if c != nil {
				c.Close()
			}
		}
		k.end(m.ID, files, k.opts.EndGrace)
		return nil, &StartError{Path: m.Name, Err: err}
	}
	if m.Cgroup != "" {
		p.cgroup = &Cgroup{dir: m.Cgroup}
	}
	var err error
	if !m.Plain {
		if p.control, err = fileConn(takeFile(&files, fdControl)); err != nil {
			return fail(fmt.Errorf("control socket: %w", err))
		}
		if p.logs, err = fileConn(takeFile(&files, fdLogs)); err != nil {
			return fail(fmt.Errorf("log socket: %w", err))
		}
	}
	if p.pidfd = takeFile(&files, fdPidfd); p.pidfd == nil {
		return fail(errors.New("no pidfd came with the worker"))
	}
	p.marks = k.marks.slot(m.ID)
	for i, name := range []string{fdStdout, fdStderr} {
		r := takeFile(&files, name)
		if r == nil {
			continue
		}
		w := writers[i]
		if w == nil {
			w = io.Discard
		}
		p.copiers.Add(1)
		go func() {
			defer p.copiers.Done()
			defer r.Close()
			io.Copy(w, r)
		}()
	}
	closeFiles(files)
	k.mu.Lock()
	if k.err != nil { // the keeper is gone: so is the worker
		k.mu.Unlock()
		go p.keeperLost()
		return p, nil
	}
	k.procs[m.ID] = p
	k.mu.Unlock()
	return p, nil
}

// takeFile removes the file named name from *files and returns it (nil: none).
func takeFile(files *[]*os.File, name string) *os.File {
	for i, f := range *files {
		if f.Name() == name {
			*files = slices.Delete(*files, i, i+1)
			return f
		}
	}
	return nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Kept has [Start] start the child through keeper k, under name (the name the next
// program adopts it by: an actor's name, say), with note kept beside it
// ([Process.SetNote] changes it). The launcher must be a *Command. stop is the signal a
// plain program gets when the keeper ends it (0 means SIGTERM).
func Kept(k *Keeper, name string, note []byte, stop syscall.Signal) Option {
	return func(o *options) { o.keeper, o.keptName, o.keptNote, o.keptStop = k, name, note, stop }
}
