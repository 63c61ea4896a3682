package actors

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// deadlineConn gives every Write a deadline, so that a child that does not read can
// never block a writer for longer than timeout.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c deadlineConn) Write(b []byte) (int, error) {
	if c.timeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	return c.Conn.Write(b)
}

// SyscallConn is the socket's, so that a wire.Writer tries its writes without waiting
// first; only what the socket does not take at once goes through Write and its deadline.
func (c deadlineConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
