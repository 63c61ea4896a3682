//go:build linux

package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// The keeper is this program run again, as the cgroup guardian is: its package init
// (below) runs before any main and never returns. It gets the listening socket as
// descriptor 3, serves one supervising program at a time, starts the workers it is asked
// to start (so it is their parent: it reaps them, and their parent-death signal follows
// it), keeps a copy of each worker's parent-side descriptors and hands them to each
// supervisor that connects. When no supervisor is connected for AdoptWithin, it ends its
// workers and exits; with no worker left and no supervisor, it exits at once.
const (
	envKeeper       = "PROCSUP_KEEPER"        // the keeper's name: set in the environment of a keeper
	envKeeperWithin = "PROCSUP_KEEPER_WITHIN" // AdoptWithin, as a Go duration
)

func init() {
	if name := os.Getenv(envKeeper); name != "" {
		runKeeper(name)
	}
}

// keeperd is the keeper process's state.
type keeperd struct {
	name string
	log  *slog.Logger

	mu      sync.Mutex
	sup     *kconn        // the connected supervisor, or nil
	supGone chan struct{} // closed when sup goes
	workers map[uint64]*kworker
	next    uint64
	within  time.Duration
	waiting *time.Timer // nobody-comes, while no supervisor is connected
	ending  bool
	served  bool                // a supervisor connected once
	cgroups map[string]*Cgroups // by parent directory
	marks   *os.File            // the page of the workers' marks
	page    marksPage
}

// kworker is one worker the keeper started.
type kworker struct {
	id   uint64
	name string
	note []byte
	proc *Process
	// The keeper's copies of the parent's ends of its sockets, and the read ends of its
	// stdout and stderr pipes when piped (-1: none): plain descriptors, which the keeper
	// never reads, kept out of its netpoller so that the worker's traffic never wakes it.
	control, logs int
	outs          [2]int
	// forgotten: the keeper closed its copies of the sockets (the supervisor asked, or
	// it is ending the worker).
	forgotten bool
	plain     bool
	stop      syscall.Signal
	grace     time.Duration
	started   time.Time
}

func runKeeper(name string) {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	k := &keeperd{name: name, workers: map[uint64]*kworker{}, cgroups: map[string]*Cgroups{},
		log: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("keeper", name, "pid", os.Getpid())}
	k.within = DefaultAdoptWithin
	if d, err := time.ParseDuration(os.Getenv(envKeeperWithin)); err == nil && d > 0 {
		k.within = d
	}
	var err error
	if k.marks, err = newMarks(); err == nil {
		k.page, err = mapMarks(k.marks)
	}
	if err != nil {
		k.log.Error("procsup keeper: no page for the marks", "error", err)
		os.Exit(1)
	}
	os.Unsetenv(envKeeper)
	os.Unsetenv(envKeeperWithin)
	lnFile := os.NewFile(3, "keeper-listener")
	ln, err := net.FileListener(lnFile)
	lnFile.Close()
	if err != nil {
		k.log.Error("procsup keeper: no listening socket", "error", err)
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		k.log.Info("procsup keeper: SIGTERM, ending the workers")
		k.endAll()
	}()
	k.mu.Lock()
	k.armLocked() // the supervisor that started it connects at once, or nobody comes
	k.mu.Unlock()
	// Connections are admitted on a goroutine of their own, and served one at a time on
	// this one, the starter: the workers are forked from its thread, which lives as long
	// as the keeper (their parent-death signal follows it), with no handoff to another.
	sessions := make(chan *kconn)
	go func() {
		for {
			c, err := ln.(*net.UnixListener).AcceptUnix()
			if err != nil {
				k.log.Error("procsup keeper: accept failed", "error", err)
				k.endAll()
				select {} // endAll exits
			}
			go func() { // a peer that says nothing holds up no other
				if conn := k.admit(c); conn != nil {
					sessions <- conn
				}
			}()
		}
	}()
	becomeStarter()
	for conn := range sessions {
		k.session(conn)
	}
}

// helloWait bounds the wait for a new connection's hello.
const helloWait = 5 * time.Second

// admit checks a new connection and its hello, and when the keeper serves nobody makes
// it the supervisor's and sends it the workers; it returns nil for a refused one.
func (k *keeperd) admit(c *net.UnixConn) *kconn {
	conn := &kconn{c: c}
	if err := samePeer(c); err != nil {
		k.log.Warn("procsup keeper: refused a connection", "error", err)
		c.Close()
		return nil
	}
	c.SetReadDeadline(time.Now().Add(helloWait))
	hello, files, err := conn.recv()
	c.SetReadDeadline(time.Time{})
	closeFiles(files)
	if err != nil || hello.T != kmHello {
		if err == nil {
			err = fmt.Errorf("first message %q, want %q", hello.T, kmHello)
		}
		if errors.Is(err, ErrKeeperVersion) {
			conn.send(&kmsg{T: kmRefused, Err: err.Error()})
		}
		k.log.Warn("procsup keeper: refused a supervisor", "error", err)
		c.Close()
		return nil
	}
	k.mu.Lock()
	if gone := k.supGone; k.sup != nil && gone != nil {
		// A supervisor that just died or left may not have been seen to go yet.
		k.mu.Unlock()
		select {
		case <-gone:
		case <-time.After(time.Second):
		}
		k.mu.Lock()
	}
	if k.sup != nil || k.ending {
		k.mu.Unlock()
		why := fmt.Sprintf("%v: keeper %s is ending its workers", ErrKeeperBusy, k.name)
		if !k.ending {
			why = fmt.Sprintf("%v: keeper %s serves another supervisor", ErrKeeperBusy, k.name)
		}
		conn.send(&kmsg{T: kmRefused, Err: why})
		c.Close()
		return nil
	}
	k.sup, k.served, k.supGone = conn, true, make(chan struct{})
	if k.waiting != nil {
		k.waiting.Stop()
		k.waiting = nil
	}
	if hello.Within > 0 {
		k.within = time.Duration(hello.Within)
	}
	// The list is sent under the lock: an exit or a spawn answer comes after it.
	err = conn.send(&kmsg{T: kmWelcome, Pid: os.Getpid(), Fds: []string{fdMarks}}, fdOf(k.marks))
	for _, w := range k.workers {
		if err != nil {
			break
		}
		m, fds := w.describe(kmWorker)
		err = conn.send(m, fds...)
	}
	if err == nil {
		err = conn.send(&kmsg{T: kmReady})
	}
	k.mu.Unlock()
	if err != nil {
		conn.c.Close() // the session sees it at once
	}
	k.log.Debug("procsup keeper: supervisor connected", "supervisor", hello.Pid)
	return conn
}

// session serves the admitted supervisor until its connection ends. It runs on the
// starter's goroutine.
func (k *keeperd) session(conn *kconn) {
	// Its own blocking read: a copy of the descriptor in blocking mode (the mode is the
	// open file's: the connection's writes may wait for room too, which they never
	// need long).
	fd, err := syscall.Dup(fdOf(conn.c))
	if err == nil {
		syscall.CloseOnExec(fd)
		syscall.SetNonblock(fd, false)
		defer syscall.Close(fd)
	}
	for err == nil {
		var m *kmsg
		var files []*os.File
		if m, files, err = conn.recvBlocking(fd); err == nil {
			k.handle(conn, m, files)
		}
	}
	conn.c.Close()
	k.mu.Lock()
	k.sup = nil
	close(k.supGone)
	k.armLocked()
	k.mu.Unlock()
}

// armLocked starts the wait for the next supervisor, or exits when there is nothing to
// keep. Under k.mu.
func (k *keeperd) armLocked() {
	if len(k.workers) == 0 && k.served && !k.ending {
		k.exitLocked()
	}
	if k.waiting == nil && !k.ending {
		k.waiting = time.AfterFunc(k.within, func() {
			k.log.Warn("procsup keeper: no supervisor came to adopt the workers, ending them", "within", k.within)
			k.endAll()
		})
	}
}

// exitLocked ends the keeper: its sessions of cgroups are removed. Under k.mu.
func (k *keeperd) exitLocked() {
	for _, cg := range k.cgroups {
		cg.Close()
	}
	os.Exit(0)
}

// describe is w as a message of type t, with its descriptors. Under k.mu: its sockets
// are not closed meanwhile (see closeConns).
func (w *kworker) describe(t string) (*kmsg, []int) {
	m := &kmsg{T: t, ID: w.id, Name: w.name, Note: w.note, Pid: w.proc.Pid(), Started: w.started.UnixNano(), Plain: w.plain}
	if cg := w.proc.Cgroup(); cg != nil {
		m.Cgroup = cg.Dir()
	}
	var fds []int
	add := func(name string, fd int) {
		if fd >= 0 {
			m.Fds = append(m.Fds, name)
			fds = append(fds, fd)
		}
	}
	if !w.forgotten {
		add(fdControl, w.control)
		add(fdLogs, w.logs)
	}
	add(fdStdout, w.outs[0])
	add(fdStderr, w.outs[1])
	add(fdPidfd, fdOf(w.proc.pidfd))
	return m, fds
}

// closeConns closes the keeper's copies of w's sockets, once. Under k.mu.
func (w *kworker) closeConns() {
	if !w.forgotten {
		w.forgotten = true
		for _, fd := range []int{w.control, w.logs} {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	}
}

// handle carries out one request of the supervisor.
func (k *keeperd) handle(conn *kconn, m *kmsg, files []*os.File) {
	switch m.T {
	case kmSpawn:
		k.spawn(conn, m, files)
		return
	case kmNote:
		k.mu.Lock()
		if w := k.workers[m.ID]; w != nil {
			w.note = m.Note
		}
		k.mu.Unlock()
	case kmForget:
		k.mu.Lock()
		if w := k.workers[m.ID]; w != nil {
			w.closeConns() // the worker sees the end of its sockets once the supervisor's close too
		}
		k.mu.Unlock()
	case kmEnd:
		k.mu.Lock()
		w := k.workers[m.ID]
		k.mu.Unlock()
		if w != nil {
			go k.end(w, time.Duration(m.Grace))
		}
	}
	closeFiles(files)
}

// spawn starts a worker for the supervisor and answers with its descriptors.
func (k *keeperd) spawn(conn *kconn, m *kmsg, files []*os.File) {
	w, err := k.start(m, files)
	if err != nil {
		conn.send(&kmsg{T: kmFailed, Seq: m.Seq, Err: err.Error()})
		return
	}
	k.mu.Lock()
	reply, fds := w.describe(kmSpawned)
	reply.Seq = m.Seq
	if k.sup == conn {
		conn.send(reply, fds...)
	}
	k.mu.Unlock()
	w.proc.AfterExit(func(st ExitStatus) { k.exited(w, st) })
}

// start starts the worker m describes.
func (k *keeperd) start(m *kmsg, files []*os.File) (*kworker, error) {
	defer closeFiles(files)
	cmd := &Command{Path: m.Path, Args: m.Args, Env: m.Env, Dir: m.Dir}
	w := &kworker{name: m.Name, note: m.Note, plain: m.Plain, stop: syscall.Signal(m.Stop), grace: time.Duration(m.Grace),
		control: -1, logs: -1, outs: [2]int{-1, -1}}
	var writeEnds []*os.File // the child's: closed here once it started
	defer func() { closeFiles(writeEnds) }()
	for i, mode := range m.Outs {
		if i > 1 {
			break
		}
		var out *os.File
		switch mode {
		case "file":
			out = takeFile(&files, []string{fdStdout, fdStderr}[i])
			writeEnds = append(writeEnds, out)
		case "pipe":
			var p [2]int
			if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
				w.closeOuts()
				return nil, os.NewSyscallError("pipe2", err)
			}
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), 1031 /* F_SETPIPE_SZ */, 1<<20) // room while no supervisor reads
			syscall.SetNonblock(p[0], true)                                                   // the supervisor polls it
			wr := os.NewFile(uintptr(p[1]), "output")
			w.outs[i], out = p[0], wr
			writeEnds = append(writeEnds, wr)
		}
		if out != nil {
			if i == 0 {
				cmd.Stdout = out
			} else {
				cmd.Stderr = out
			}
		}
	}
	var opts []Option
	if m.Plain {
		opts = append(opts, WithoutProtocol())
	}
	if m.CgDir != "" {
		cg, err := k.cgroupsFor(m.CgDir)
		if err != nil {
			w.closeOuts()
			return nil, err
		}
		opts = append(opts, InCgroup(cg, m.Name, m.Limits.limits()))
	}
	k.mu.Lock()
	k.next++
	w.id = k.next
	k.mu.Unlock()
	marks := k.page.slot(w.id)
	for off := 0; off < marksSlot; off += 4 {
		marks.at(off).Store(0) // a new worker's streams begin between frames
	}
	proc, err := Start(context.Background(), cmd, opts...)
	if err != nil {
		w.closeOuts()
		return nil, err
	}
	w.proc, w.started = proc, proc.StartTime()
	if !m.Plain {
		w.control, w.logs = plainFd(proc.Control()), plainFd(proc.Logs())
	}
	k.mu.Lock()
	if k.ending { // too late: nobody keeps it
		k.mu.Unlock()
		proc.Kill()
		proc.Close()
		w.closeOuts()
		return nil, ErrKeeperGone
	}
	k.workers[w.id] = w
	k.mu.Unlock()
	return w, nil
}

func (k *keeperd) cgroupsFor(dir string) (*Cgroups, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if cg := k.cgroups[dir]; cg != nil {
		return cg, nil
	}
	cg, err := OpenCgroups(dir, k.log)
	if err != nil {
		return nil, err
	}
	k.cgroups[dir] = cg
	return cg, nil
}

func (w *kworker) closeOuts() {
	for i, fd := range w.outs {
		if fd >= 0 {
			syscall.Close(fd)
			w.outs[i] = -1
		}
	}
}

// plainFd returns a duplicate of c's descriptor, close-on-exec, outside the netpoller,
// and closes c (which takes its descriptor out of the netpoller); -1 for a nil c.
func plainFd(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	fd := fdOf(sc)
	if fd < 0 {
		return -1
	}
	dup, err := syscall.Dup(fd)
	c.Close()
	if err != nil {
		return -1
	}
	syscall.CloseOnExec(dup)
	return dup
}

// exited drops a reaped worker and tells the supervisor.
func (k *keeperd) exited(w *kworker, st ExitStatus) {
	w.proc.Close() // its cgroup goes (what is left in it killed, waited for): not under k.mu
	k.mu.Lock()
	defer k.mu.Unlock()
	w.closeConns()
	w.closeOuts()
	delete(k.workers, w.id)
	if k.sup != nil {
		k.sup.send(&kmsg{T: kmExit, ID: w.id, Exit: &kExit{Code: st.Code, Signal: int(st.Signal), CPU: int64(st.CPU)}})
	}
	if len(k.workers) == 0 && (k.sup == nil || k.ending) {
		k.exitLocked()
	}
}

// end ends w gracefully (a protocol worker sees its sockets end, a plain program gets
// its stop signal), then kills it after grace, and waits (a while) for its reaping.
func (k *keeperd) end(w *kworker, grace time.Duration) {
	if w.plain {
		stop := w.stop
		if stop == 0 {
			stop = syscall.SIGTERM
		}
		w.proc.SignalAll(stop)
	} else {
		k.mu.Lock()
		w.closeConns()
		k.mu.Unlock()
	}
	select {
	case <-w.proc.Done():
		return
	case <-time.After(grace):
	}
	w.proc.Kill()
	select {
	case <-w.proc.Done():
	case <-time.After(cgroupWait):
		k.log.Error("procsup keeper: a killed worker was not reaped", "worker", w.name, "pid", w.proc.Pid())
	}
}

// endAll ends every worker, gracefully and then killed, and exits once all are reaped
// (or, should one never be, after its wait: the parent-death signal follows).
func (k *keeperd) endAll() {
	k.mu.Lock()
	if k.ending {
		k.mu.Unlock()
		return
	}
	k.ending = true
	ws := make([]*kworker, 0, len(k.workers))
	for _, w := range k.workers {
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		k.exitLocked()
	}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		grace := w.grace
		if grace <= 0 {
			grace = DefaultEndGrace
		}
		wg.Go(func() { k.end(w, grace) })
	}
	wg.Wait()
	k.mu.Lock()
	k.exitLocked()
}

// samePeer refuses a peer of another user.
func samePeer(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer pid %d is user %d, not %d", cred.Pid, cred.Uid, os.Getuid())
	}
	return nil
}
