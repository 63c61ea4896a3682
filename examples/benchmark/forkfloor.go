package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/procsup/procsup/messages/wire"
	"golang.org/x/sys/unix"
)

// forkFloorSide is the floor of a forked Python worker: the smallest Python fork
// server (pyrawfork.py, started once), which forks a child that echoes its socket, as
// the Python floor does. The parent passes the child's end of a socket pair, reads the
// child's pid, and writes a frame and reads it back; kill is a signal and a wait on the
// child's pidfd; close is closing the socket and that wait.
type forkFloorSide struct {
	cmd    *exec.Cmd
	server *net.UnixConn
}

func newForkFloor(py, script string) (*forkFloorSide, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "forkfloor"), os.NewFile(uintptr(fds[1]), "forkfloor-child")
	cmd := exec.Command(py, script)
	cmd.Env, cmd.ExtraFiles, cmd.Stderr = childEnv, []*os.File{theirs}, os.Stderr
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		ours.Close()
		return nil, err
	}
	c, err := net.FileConn(ours)
	ours.Close()
	s := &forkFloorSide{cmd: cmd}
	if err == nil {
		s.server = c.(*net.UnixConn)
		buf := make([]byte, 16)
		var n int
		if n, err = s.server.Read(buf); err == nil && string(buf[:n]) != "ready" {
			err = fmt.Errorf("the fork floor said %q", buf[:n])
		}
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (*forkFloorSide) name() string { return "Python fork floor" }

// stop ends the fork server.
func (s *forkFloorSide) stop() {
	if s.server != nil {
		s.server.Close()
	}
	s.cmd.Wait()
}

type forkFloorChild struct {
	pid   int
	pidfd int
	echoer
}

func (s *forkFloorSide) start() (child, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	syscall.SetNonblock(fds[0], true) // the parent's end in the netpoller, as a Go program would
	conn := os.NewFile(uintptr(fds[0]), "control")
	_, _, err = s.server.WriteMsgUnix([]byte("f"), syscall.UnixRights(fds[1]), nil)
	syscall.Close(fds[1])
	buf := make([]byte, 16)
	var n int
	if err == nil {
		n, err = s.server.Read(buf)
	}
	pid, perr := strconv.Atoi(string(buf[:n]))
	if err == nil && perr != nil {
		err = fmt.Errorf("the fork floor answered %q", buf[:n])
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		conn.Close()
		return nil, err
	}
	c := &forkFloorChild{pid: pid, pidfd: pidfd, echoer: echoer{conn: conn}}
	init, _ := wire.Encode(&wire.InitializeRequest{})
	if err := c.echo(init); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

func (c *forkFloorChild) osPid() int { return c.pid }

// gone waits until the child has exited (its pidfd is readable).
func (c *forkFloorChild) gone() error {
	defer unix.Close(c.pidfd)
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(c.pidfd), Events: unix.POLLIN}}, -1)
		if err != syscall.EINTR {
			return err
		}
	}
}

func (c *forkFloorChild) kill() error {
	unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0)
	err := c.gone()
	c.conn.Close()
	return err
}

func (c *forkFloorChild) close() error {
	c.conn.Close() // the child exits on EOF
	return c.gone()
}
