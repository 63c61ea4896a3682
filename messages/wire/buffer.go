package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// readBuffers are the buffers of every Reader, shared: a Reader holds one only while it
// has bytes read and not yet taken, so a parent with a thousand idle children holds
// none, not two each.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBuffer); return &b }}

// lazyBuffer is a read buffer over a stream that borrows its memory from readBuffers
// only while it has unread bytes. Over a socket (a [syscall.Conn]) it waits for the next
// bytes holding no buffer: it borrows one for the read that finds bytes and gives it back
// when they are all taken. Over another reader it borrows one for each read.
type lazyBuffer struct {
	src  io.Reader
	raw  syscall.RawConn // src's, when it is a socket or file with a descriptor
	buf  *[]byte         // nil while empty
	r, w int             // the unread bytes are (*buf)[r:w]
	err  error           // the error of the read that also returned the last bytes

	// The raw read's callback (readRaw, made once: a closure made at each read would be
	// allocated with the variables it sets) and what its last call found.
	readRaw func(fd uintptr) bool
	quiet   bool           // the descriptor is non-blocking: read with rawCall
	mark    *atomic.Uint32 // see Reader.SetMark
	// fresh: the reader is between frames with nothing buffered, so a read that takes
	// whole frames leaves the stream between frames (see readWhole).
	fresh bool
	got   *[]byte
	n     int
	errno error
}

func newLazyBuffer(src io.Reader) *lazyBuffer {
	b := &lazyBuffer{src: src}
	if sc, ok := src.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			b.raw, b.readRaw, b.quiet = raw, b.readFd, nonblocking(raw)
		}
	}
	return b
}

// Read implements io.Reader.
func (b *lazyBuffer) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.buf == nil {
		if b.err != nil {
			err := b.err
			b.err = nil
			return 0, err
		}
		if len(p) >= readBuffer {
			return b.src.Read(p) // a large read goes straight into p
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*b.buf)[b.r:b.w])
	b.r += n
	if b.r == b.w {
		readBuffers.Put(b.buf)
		b.buf = nil
	}
	return n, nil
}

// fill reads what is there into a borrowed buffer, waiting for at least one byte; it
// returns with b.buf set, or an error and no buffer.
func (b *lazyBuffer) fill() error {
	if b.raw != nil {
		rerr := b.raw.Read(b.readRaw)
		buf, n, err := b.got, b.n, b.errno
		b.got, b.errno = nil, nil
		switch {
		case rerr != nil: // a deadline, a closed descriptor
			if buf != nil {
				readBuffers.Put(buf)
			}
			return rerr
		case err != nil:
			readBuffers.Put(buf)
			if errors.Is(err, syscall.ECONNRESET) {
				return err
			}
			return &readError{err}
		case n == 0:
			readBuffers.Put(buf)
			return io.EOF
		}
		b.buf, b.r, b.w = buf, 0, n
		return nil
	}
	buf := readBuffers.Get().(*[]byte)
	var n int
	var err error
	if b.mark != nil {
		b.mark.Store(1)
	}
	for n == 0 && err == nil {
		n, err = b.src.Read(*buf)
	}
	if n == 0 {
		readBuffers.Put(buf)
		return err
	}
	b.buf, b.r, b.w, b.err = buf, 0, n, err
	return nil
}

// readFd is the raw read's callback: it reads what is there into a borrowed buffer,
// kept in b.got with the count and error; finding nothing, it gives the buffer back and
// has the read wait.
func (b *lazyBuffer) readFd(fd uintptr) bool {
	buf := readBuffers.Get().(*[]byte)
	var n int
	var err error
	var was uint32
	if b.mark != nil {
		if b.fresh {
			if n, ok := b.readWhole(fd, *buf); ok {
				if n < 0 { // nothing yet
					readBuffers.Put(buf)
					return false
				}
				b.got, b.n, b.errno, b.fresh = buf, n, nil, false
				return true
			}
		}
		was = b.mark.Swap(1) // before the read: it may take part of a frame
	}
	for {
		if b.quiet {
			n, err = rawCall(syscall.SYS_READ, fd, *buf)
		} else {
			n, err = syscall.Read(int(fd), *buf)
		}
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		if b.mark != nil {
			b.mark.Store(was) // nothing taken
		}
		readBuffers.Put(buf) // nothing yet: wait holding nothing
		return false
	}
	b.fresh = false
	b.got, b.n, b.errno = buf, n, err
	return true
}

// readError is a failed read(2) on the reader's descriptor.
type readError struct{ errno error }

func (e *readError) Error() string { return "read: " + e.errno.Error() }
func (e *readError) Unwrap() error { return e.errno }

// A Reader's reads and a Writer's first write on a non-blocking socket are system calls
// the runtime does not see (syscall.RawSyscall): they return at once, whatever the
// socket holds, so the runtime has nothing to hand over while they run, and they do not
// wake its sysmon thread as a call through package syscall would.

// rawCall is read(2) or write(2) (trap) of p on a non-blocking descriptor, unseen by
// the runtime.
func rawCall(trap, fd uintptr, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// nonblocking reports whether raw's descriptor is non-blocking: only then are its reads
// and writes raw calls.
func nonblocking(raw syscall.RawConn) bool {
	nb := false
	raw.Control(func(fd uintptr) {
		fl, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nb = e == 0 && fl&syscall.O_NONBLOCK != 0
	})
	return nb
}

// readWhole is a read that leaves the stream between frames, for a reader with a mark
// that is between frames with nothing buffered: it looks at what is there (MSG_PEEK) and
// takes only whole frames, none a fragment, so that the mark need not be set. It reports
// ok false when what is there does not begin with such a frame (a large one, or a
// fragment, or an error or the end: the caller reads as usual); n is -1 when nothing is
// there yet.
func (b *lazyBuffer) readWhole(fd uintptr, buf []byte) (n int, ok bool) {
	var peeked int
	var err error
	for {
		peeked, err = b.recv(fd, buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		return -1, true
	}
	if err != nil || peeked <= 0 {
		return 0, false
	}
	whole := wholePrefix(buf[:peeked])
	if whole == 0 {
		return 0, false
	}
	for {
		n, err = b.recv(fd, buf[:whole], syscall.MSG_DONTWAIT) // this reader alone reads: all of it
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil || n != whole {
		// Cannot happen with one reader; read on as usual, marked.
		b.mark.Store(1)
		if n < 0 {
			n = 0
		}
		return n, n > 0
	}
	return n, true
}

// recv is recvfrom(2) of p with flags on fd: unseen by the runtime where the descriptor
// is non-blocking (see rawCall).
func (b *lazyBuffer) recv(fd uintptr, p []byte, flags int) (int, error) {
	var r uintptr
	var e syscall.Errno
	ptr := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	if b.quiet {
		r, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, ptr, uintptr(len(p)), uintptr(flags), 0, 0)
	} else {
		r, _, e = syscall.Syscall6(syscall.SYS_RECVFROM, fd, ptr, uintptr(len(p)), uintptr(flags), 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// wholePrefix is the length of the longest prefix of b that is whole frames, none of
// them perhaps a fragment.
func wholePrefix(b []byte) int {
	n := 0
	for len(b)-n >= 4 {
		size := int(binary.BigEndian.Uint32(b[n:]))
		if size > len(b)-n-4 || bytes.Contains(b[n+4:n+4+size], fragmentType) {
			break
		}
		n += 4 + size
	}
	return n
}

// fragmentType is the msgpack string "fragment", as a frame's type is written.
var fragmentType = []byte("\xa8fragment")
