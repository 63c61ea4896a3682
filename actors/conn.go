package actors

import (
	"net"
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
