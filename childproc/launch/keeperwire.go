//go:build linux

package launch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// KeeperVersion is the version of the protocol between a supervising program and its
// keeper. A supervisor adopts the workers of a keeper whose version is the same; a keeper
// of another version refuses it with [ErrKeeperVersion]. It changes only when the
// messages below change in a way an older build cannot read.
const KeeperVersion = 1

// keeperMaxMsg bounds one message between a supervisor and its keeper (a spawn carries
// an environment). The socket keeps message boundaries (SOCK_SEQPACKET).
const keeperMaxMsg = 256 << 10

// keeperMaxFds bounds the descriptors that come with one message.
const keeperMaxFds = 16

// The message types.
const (
	kmHello   = "hello"   // supervisor → keeper: the first message (Version, Pid, AdoptWithin)
	kmWelcome = "welcome" // keeper → supervisor: accepted (Pid), then one kmWorker per live worker, then kmReady
	kmRefused = "refused" // keeper → supervisor: not accepted (Err), and the connection ends
	kmWorker  = "worker"  // keeper → supervisor: a live worker, with its descriptors
	kmReady   = "ready"   // keeper → supervisor: the end of the list of workers
	kmSpawn   = "spawn"   // supervisor → keeper: start a worker (Seq, the command), with its output files
	kmSpawned = "spawned" // keeper → supervisor: the worker runs (Seq, ID, Pid...), with its descriptors
	kmFailed  = "failed"  // keeper → supervisor: the spawn failed (Seq, Err)
	kmNote    = "note"    // supervisor → keeper: keep Note for worker ID
	kmForget  = "forget"  // supervisor → keeper: close your copies of worker ID's sockets
	kmEnd     = "end"     // supervisor → keeper: end worker ID gracefully, killed after Grace
	kmExit    = "exit"    // keeper → supervisor: worker ID exited (Code, Signal, CPU)
)

// The descriptors that come with a worker, in this order, each when Fds names it.
const (
	fdControl = "control"
	fdLogs    = "logs"
	fdStdout  = "stdout"
	fdStderr  = "stderr"
	fdPidfd   = "pidfd"
	fdMarks   = "marks"
)

// kmsg is one message of the keeper's protocol: a msgpack map whose fields are named;
// each message uses some of them.
type kmsg struct {
	T       string   `msgpack:"t"`
	Version int      `msgpack:"v,omitempty"`
	Seq     uint64   `msgpack:"seq,omitempty"`
	ID      uint64   `msgpack:"id,omitempty"`
	Pid     int      `msgpack:"pid,omitempty"`
	Err     string   `msgpack:"err,omitempty"`
	Name    string   `msgpack:"name,omitempty"`
	Note    []byte   `msgpack:"note,omitempty"`
	Fds     []string `msgpack:"fds,omitempty"` // what the descriptors that come with it are
	Started int64    `msgpack:"started,omitempty"`
	Grace   int64    `msgpack:"grace,omitempty"` // ns
	Within  int64    `msgpack:"within,omitempty"`
	Cgroup  string   `msgpack:"cgroup,omitempty"`

	// A spawn's command.
	Path   string   `msgpack:"path,omitempty"`
	Args   []string `msgpack:"args,omitempty"`
	Env    []string `msgpack:"env,omitempty"`
	Dir    string   `msgpack:"dir,omitempty"`
	Plain  bool     `msgpack:"plain,omitempty"`
	Stop   int      `msgpack:"stop,omitempty"` // the signal that starts a graceful end of a plain program
	Outs   []string `msgpack:"outs,omitempty"` // stdout and stderr: "" (discard), "file" (comes with it), "pipe"
	CgDir  string   `msgpack:"cgdir,omitempty"`
	Limits *kLimits `msgpack:"limits,omitempty"`
	Exit   *kExit   `msgpack:"exit,omitempty"`
}

// kLimits are CgroupLimits on the keeper's protocol.
type kLimits struct {
	MemoryMax  int64   `msgpack:"memory_max,omitempty"`
	MemoryHigh int64   `msgpack:"memory_high,omitempty"`
	PidsMax    int64   `msgpack:"pids_max,omitempty"`
	CPUMax     float64 `msgpack:"cpu_max,omitempty"`
}

func wireLimits(l CgroupLimits) *kLimits {
	return &kLimits{MemoryMax: l.MemoryMax, MemoryHigh: l.MemoryHigh, PidsMax: l.PidsMax, CPUMax: l.CPUMax}
}

func (l *kLimits) limits() CgroupLimits {
	if l == nil {
		return CgroupLimits{}
	}
	return CgroupLimits{MemoryMax: l.MemoryMax, MemoryHigh: l.MemoryHigh, PidsMax: l.PidsMax, CPUMax: l.CPUMax}
}

// kExit is an exit status on the keeper's protocol.
type kExit struct {
	Code   int   `msgpack:"code"`
	Signal int   `msgpack:"signal,omitempty"`
	CPU    int64 `msgpack:"cpu,omitempty"`
}

func (e *kExit) status() ExitStatus {
	if e == nil {
		return ExitStatus{Code: -1, Signal: syscall.SIGKILL}
	}
	return ExitStatus{Code: e.Code, Signal: syscall.Signal(e.Signal), CPU: time.Duration(e.CPU)}
}

// ErrKeeperVersion reports a keeper whose protocol version is not this program's.
var ErrKeeperVersion = errors.New("procsup/launch: the keeper speaks another protocol version")

// ErrKeeperBusy reports a keeper that serves another supervising program.
var ErrKeeperBusy = errors.New("procsup/launch: the keeper serves another supervising program")

// ErrKeeperGone reports a keeper that ended, or a connection to it that broke.
var ErrKeeperGone = errors.New("procsup/launch: the keeper is gone")

// kconn is one end of a keeper connection: whole messages, with descriptors. Its
// messages are read by one goroutine at a time, into buffers it keeps; any number may
// send.
type kconn struct {
	c        *net.UnixConn
	msg, oob []byte // the reading's, made at the first
}

// send writes m with the descriptors fds (duplicated into the receiver).
func (k *kconn) send(m *kmsg, fds ...int) error {
	m.Version = KeeperVersion
	b, err := msgpack.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > keeperMaxMsg {
		return fmt.Errorf("procsup/launch: a %s message of %d bytes is over the keeper's %d", m.T, len(b), keeperMaxMsg)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	_, _, err = k.c.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads the next message and the descriptors that came with it, as files named for
// m.Fds. A descriptor beyond those named is closed.
func (k *kconn) recv() (*kmsg, []*os.File, error) {
	b, oob := k.buffers()
	n, oobn, flags, _, err := k.c.ReadMsgUnix(b, oob)
	if err != nil {
		return nil, nil, err
	}
	return decodeMsg(b[:n], oob[:oobn], flags)
}

// recvBlocking is recv in a system call that waits in the kernel, on the calling
// goroutine's own thread: the keeper's loop, locked to its thread, is woken by the
// message itself, with no netpoller between.
func (k *kconn) recvBlocking(fd int) (*kmsg, []*os.File, error) {
	b, oob := k.buffers()
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = syscall.Recvmsg(fd, b, oob, syscall.MSG_CMSG_CLOEXEC)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return decodeMsg(b[:n], oob[:oobn], flags)
}

// buffers are the reading's buffers, made once: a message and its control data.
func (k *kconn) buffers() (msg, oob []byte) {
	if k.msg == nil {
		k.msg, k.oob = make([]byte, keeperMaxMsg), make([]byte, syscall.CmsgSpace(keeperMaxFds*4))
	}
	return k.msg, k.oob
}

// decodeMsg decodes a message read with its control data. The message's fields are
// copies: the buffers may be read into again.
func decodeMsg(b, oob []byte, flags int) (*kmsg, []*os.File, error) {
	n, oobn := len(b), len(oob)
	var fds []int
	if oobn > 0 {
		scms, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, scm := range scms {
				if got, err := syscall.ParseUnixRights(&scm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	if n == 0 {
		closeAll()
		return nil, nil, errEOF
	}
	if flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
		closeAll()
		return nil, nil, errors.New("procsup/launch: a keeper message over the size bound")
	}
	m := new(kmsg)
	if err := msgpack.Unmarshal(b[:n], m); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("procsup/launch: a malformed keeper message: %w", err)
	}
	if m.Version != KeeperVersion {
		closeAll()
		return m, nil, fmt.Errorf("%w: it speaks %d, this program %d", ErrKeeperVersion, m.Version, KeeperVersion)
	}
	files := make([]*os.File, 0, len(fds))
	for i, fd := range fds {
		syscall.CloseOnExec(fd)
		if i < len(m.Fds) {
			files = append(files, os.NewFile(uintptr(fd), m.Fds[i]))
		} else {
			syscall.Close(fd)
		}
	}
	return m, files, nil
}

// errEOF is the end of a keeper connection.
var errEOF = errors.New("procsup/launch: the keeper connection ended")

// fdOf is c's descriptor, as it is, valid while c is open; -1 for a closed or nil c. (A
// file's Fd would put it in blocking mode, and the mode belongs to the open file, which
// the receiver of a copy shares.)
func fdOf(c syscall.Conn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if rc.Control(func(d uintptr) { fd = int(d) }) != nil {
		return -1
	}
	return fd
}
