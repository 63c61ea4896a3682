package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"syscall"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// DefaultMaxFrame is the default cap on a frame's body: 16 MiB.
const DefaultMaxFrame = 16 << 20

// FragmentSize is the largest part of a large frame in one [Fragment]: a small frame
// waits behind at most one part.
const FragmentSize = 256 << 10

// writeBuffer is the room a Writer's frame buffer starts with: a small frame's, with the
// 256 bytes encodeBody keeps beyond a message's body. Grown only when a larger frame
// comes, it is made when the Writer is, not by the first write of a request or reply (in
// a child, the allocator's memory for it would be new to the first request, page faults
// included).
const writeBuffer = 320

// readBuffer is the size of a Reader's buffer (borrowed only while it holds bytes: see
// lazyBuffer); a larger body is read straight into its own allocation.
const readBuffer = 4 << 10

// Encode returns the frame for m: the 4-byte big-endian length and the msgpack body.
func Encode(m Wire) ([]byte, error) {
	return frameInto(new(fieldEncoder), nil, m)
}

// frameInto appends m's frame, the length prefix and the body, to buf[:0] with f and
// returns it.
func frameInto(f *fieldEncoder, buf []byte, m Wire) ([]byte, error) {
	body, err := encodeBody(f, append(buf[:0], 0, 0, 0, 0), m)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(body, uint32(len(body)-4))
	return body, nil
}

// encodeBody appends m's body to buf: the envelope's map of type and data, the data the
// message's fields, written straight into buf (no copy of a large body through an
// intermediate). f is the encoder's memory (a Writer's own: one handed to each message's
// encodeFields would be allocated per frame); it holds nothing of buf after it.
func encodeBody(f *fieldEncoder, buf []byte, m Wire) ([]byte, error) {
	fc := codecOf(m)
	if fc == nil {
		return nil, errors.New("procsup/wire: " + typeName(m) + " is not a wire message")
	}
	if n, ok := minSize(m); ok {
		buf = slices.Grow(buf, n+256) // one allocation for a large body, not a doubling series
	}
	f.ready()
	f.b = buf
	f.mapLen(2)
	f.strField("type", string(m.WireType()))
	f.str("data")
	fc.encodeFields(f)
	buf, f.b = f.b, nil
	return buf, nil
}

// Decode decodes one frame body (without its length prefix). It checks the body's shape
// before decoding, so that no input makes it allocate more than a small multiple of
// len(body). Errors match [ErrUnknownType] or [ErrMalformed].
func Decode(body []byte) (Wire, error) {
	return decodeWith(new(fieldDecoder), body)
}

// decodeWith is Decode with d's memory (a Reader's own: made once, not for each frame);
// d holds nothing of body after it.
func decodeWith(d *fieldDecoder, body []byte) (Wire, error) {
	defer d.release()
	if len(body) == 0 {
		return nil, &DecodeError{Err: errors.New("empty frame")}
	}
	if err := checkShape(body); err != nil {
		return nil, &DecodeError{Err: err}
	}
	if !isMap(body[0]) {
		return nil, &DecodeError{Err: errors.New("the body is not a map")}
	}
	// The envelope: "type" and "data" in any order (this package writes them in that
	// order), other keys skipped.
	d.reset(body)
	d.alias = false
	n, err := d.mapLen()
	if err != nil {
		return nil, &DecodeError{Err: err}
	}
	var t []byte // the type, aliasing body: made a string only for an error
	data := -1   // where the data's value starts
	for range n {
		key, err := d.raw()
		if err == nil {
			switch string(key) {
			case "type":
				t, err = d.raw()
			case "data":
				data = d.pos
				err = d.skip()
			default:
				err = d.skip()
			}
		}
		if err != nil {
			return nil, &DecodeError{Err: err}
		}
	}
	if len(t) == 0 {
		return nil, &DecodeError{Err: errors.New("no message type")}
	}
	m, fs := newWire(t)
	if m == nil {
		return nil, &UnknownTypeError{Type: string(t)}
	}
	if data < 0 {
		return m, nil // no data: the zero message
	}
	if c := body[data]; !isMap(c) && c != msgpcode.Nil {
		return nil, &DecodeError{Type: string(t), Err: errors.New("data is not a map")}
	}
	_, fragment := m.(*Fragment)
	d.pos, d.alias = data, fragment || len(body) > aliasAbove
	if err := decodeFields(d, fs); err != nil {
		return nil, &DecodeError{Type: string(t), Err: err}
	}
	return m, nil
}

// isMap reports whether c starts a msgpack map.
func isMap(c byte) bool { return c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf }

// Reader reads frames from a stream. It is not safe for concurrent use: one goroutine
// reads, as the parent's reader actor and the child runtime's read loop do.
type Reader struct {
	r       *lazyBuffer
	max     int
	dir     string
	partial []byte // the parts of a fragmented frame so far
	scratch []byte // reused for frames up to scratchMax
	// Memory of each read, made once: a length prefix read through an io.Reader and a
	// decoder handed to each message's decodeField would each be allocated per frame.
	hdr [4]byte
	dec fieldDecoder
}

// NewReader returns a Reader over r that rejects bodies larger than maxFrame bytes
// (DefaultMaxFrame when maxFrame <= 0). Over a socket or file that is non-blocking when
// NewReader is called, its reads are system calls the runtime does not see (see
// rawCall): the descriptor must stay non-blocking (os.File's Fd makes a file it put in
// non-blocking mode blocking).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Reader{r: newLazyBuffer(r), max: maxFrame}
}

// Limit returns the largest body r accepts.
func (r *Reader) Limit() int { return r.max }

// SetMark has r keep m non-zero whenever the stream may have been read into the middle
// of a frame (a fragmented frame counts as one): from before a read that may take part
// of a frame until r is between frames again with nothing of the next one taken. A
// supervising program that dies leaves m as it was, in memory that outlives it (see
// launch.Marks), and the next one tells from it whether the stream can be read on. Set
// it before the first Read.
func (r *Reader) SetMark(m *atomic.Uint32) { r.r.mark = m }

// SetDirection names the way this reader's frames go ("from the child", say), for its
// [FrameTooLargeError]s.
func (r *Reader) SetDirection(direction string) { r.dir = direction }

// Read reads and decodes the next frame. At an end of stream between frames (a clean one,
// or a reset because the peer exited with data unread) it returns an error matching
// [ErrClosed]; a frame cut short is a [DecodeError] wrapping
// [io.ErrUnexpectedEOF]; a length over the cap is a [FrameTooLargeError], checked before
// anything is allocated. Errors of the underlying stream (a deadline, say) are returned
// as they are. After ErrFrameTooLarge or a truncated frame the stream is out of step and
// must be closed; after ErrUnknownType or another ErrMalformed the next frame can be read.
//
// Fragments are reassembled: Read returns the small frames that come between a large
// frame's fragments as they come, and the large frame when its last fragment is read.
func (r *Reader) Read() (Wire, error) {
	for {
		body, err := r.readFrame(true)
		if err != nil {
			return nil, err
		}
		m, err := decodeWith(&r.dec, body)
		f, ok := m.(*Fragment)
		if !ok {
			r.between()
			return m, err
		}
		whole, err := r.assemble(f)
		if err != nil || whole == nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		r.between()
		m, err = decodeWith(&r.dec, whole)
		if _, nested := m.(*Fragment); nested {
			return nil, &DecodeError{Type: string(TypeFragment), Err: errors.New("a fragment inside a fragmented frame")}
		}
		return m, err
	}
}

// assemble adds f to the frame being reassembled and returns the whole body after the
// last part. The whole is held to the reader's cap: a first fragment that announces more
// is refused before anything is allocated.
func (r *Reader) assemble(f *Fragment) ([]byte, error) {
	if f.Size > 0 {
		if f.Size > uint64(r.max) {
			r.partial = nil
			return nil, &FrameTooLargeError{Size: f.Size, Max: r.max, Direction: r.dir}
		}
		r.partial = make([]byte, 0, f.Size)
	}
	if len(r.partial)+len(f.Part) > r.max {
		size := uint64(len(r.partial) + len(f.Part))
		r.partial = nil
		return nil, &FrameTooLargeError{Size: size, Max: r.max, Direction: r.dir}
	}
	r.partial = append(r.partial, f.Part...) // Part may alias the scratch buffer: copied here
	if f.More {
		return nil, nil
	}
	whole := r.partial
	r.partial = nil
	if cap(r.scratch) > readBuffer {
		r.scratch = nil // a reader of an idle child keeps no large buffer
	}
	return whole, nil
}

// ReadFrame reads the next frame's body without decoding it.
func (r *Reader) ReadFrame() ([]byte, error) { return r.readFrame(false) }

// scratchMax is the largest frame Read reads into its reused buffer (a fragment fits):
// its messages are decoded into memory of their own, so the buffer is free again when
// Read returns. Larger frames get a buffer each (their bodies may alias it).
const scratchMax = FragmentSize + 1024

// between clears the mark when the stream is between frames with nothing of the next
// one taken: the frames read are off the stream, whatever becomes of them.
func (r *Reader) between() {
	if r.r.mark != nil && r.r.buf == nil && r.partial == nil {
		r.r.mark.Store(0)
		r.r.fresh = true
	}
}

// readFrame reads the next frame's body, into the reader's reused buffer when scratch is
// set and the frame fits.
func (r *Reader) readFrame(scratch bool) ([]byte, error) {
	r.between()
	hdr := r.hdr[:]
	if _, err := io.ReadFull(r.r, hdr); err != nil {
		switch {
		case err == io.EOF:
			return nil, ErrClosed
		case err == io.ErrUnexpectedEOF:
			return nil, &DecodeError{Err: err}
		case errors.Is(err, syscall.ECONNRESET):
			// The peer closed with data of ours unread: closed all the same.
			return nil, &closedError{err}
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if uint64(n) > uint64(r.max) {
		return nil, &FrameTooLargeError{Size: uint64(n), Max: r.max, Direction: r.dir}
	}
	var body []byte
	if scratch && n <= scratchMax {
		if cap(r.scratch) < int(n) {
			r.scratch = make([]byte, n)
		}
		body = r.scratch[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(r.r, body); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, &DecodeError{Err: io.ErrUnexpectedEOF}
		}
		return nil, err
	}
	return body, nil
}

// Writer writes frames to a stream. It is safe for concurrent use: each frame goes out
// under a lock, so frames from several goroutines never interleave, and a frame is never
// left half written. Over a non-blocking socket, a frame is first written with a system
// call that does not wait (see rawCall); whatever the socket does not take at once goes
// through the stream's Write.
type Writer struct {
	// The locks are channels, so that a wait for them can end with a context.
	mu        chan struct{} // held for one frame
	bulk      chan struct{} // held for the whole of a fragmented frame
	w         io.Writer
	max       int
	dir       string
	fragments bool            // the receiver reads fragments
	buf       []byte          // reused for each frame, under mu
	enc       fieldEncoder    // writes into buf, under mu
	raw       syscall.RawConn // w's, when w is a non-blocking socket: tried first (tryRaw)
	// The raw write's callback (made once) and, under mu, what it is to write and how
	// much of that went.
	rawWrite func(fd uintptr)
	rawBuf   []byte
	rawN     int
	late     atomic.Pointer[func(error)] // SetLateFailure's
	// SetMarks': non-zero while a frame, and a fragmented frame, is on its way.
	markFrame, markBulk *atomic.Uint32
	whole               int // a frame up to this size goes in one piece or not at all
}

// SetMarks has w keep frame non-zero from before the first byte of a frame is written
// until after its last, and bulk likewise for the whole of a fragmented frame. A frame
// the socket takes in one piece or not at all (a unix stream socket takes a write that
// fits in one of its buffers so) needs no mark: whenever the program dies, the stream is
// between frames. A write that fails leaves the marks set: the stream may hold half a
// frame. A supervising program that dies leaves them as they were, in memory that
// outlives it (see launch.Marks), and the next one tells from them whether the stream can
// be written on. Set them before the first Write.
func (w *Writer) SetMarks(frame, bulk *atomic.Uint32) {
	w.markFrame, w.markBulk = frame, bulk
	w.whole = 0
	if w.raw != nil {
		w.raw.Control(func(fd uintptr) { w.whole = wholeWrite(fd) })
	}
}

// wholeWrite is the largest write a unix stream socket takes in one piece or not at
// all: what fits in one of its buffers (half its send buffer, less the kernel's
// overhead), at most 32 KiB; 0 for another kind of socket.
func wholeWrite(fd uintptr) int {
	if sa, err := syscall.Getsockname(int(fd)); err != nil {
		return 0
	} else if _, unix := sa.(*syscall.SockaddrUnix); !unix {
		return 0
	}
	if t, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || t != syscall.SOCK_STREAM {
		return 0
	}
	n, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	if err != nil {
		return 0
	}
	return max(0, min(32<<10, n/2-64-1024))
}

func (w *Writer) lock()   { w.mu <- struct{}{} }
func (w *Writer) unlock() { <-w.mu }

// acquire takes the lock l, or returns ctx's error if ctx ends first.
func acquire(ctx context.Context, l chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryRaw writes what of b the socket takes at once, without waiting and without a
// system call the runtime sees, and returns how much that was.
func (w *Writer) tryRaw(b []byte) int {
	w.rawBuf, w.rawN = b, 0
	w.raw.Control(w.rawWrite)
	n := w.rawN
	w.rawBuf = nil
	return n
}

// writeFd writes w.rawBuf until the socket takes no more.
func (w *Writer) writeFd(fd uintptr) {
	for w.rawN < len(w.rawBuf) {
		n, err := rawCall(syscall.SYS_WRITE, fd, w.rawBuf[w.rawN:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		w.rawN += n
	}
}

// NewWriter returns a Writer over w that refuses to send bodies larger than maxFrame
// bytes (DefaultMaxFrame when maxFrame <= 0). Over a socket or file that is non-blocking when
// NewWriter is called, it first writes each frame with a system call the runtime does
// not see: the descriptor must stay non-blocking, as for NewReader.
func NewWriter(w io.Writer, maxFrame int) *Writer {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	wr := &Writer{w: w, max: maxFrame, buf: make([]byte, 0, writeBuffer),
		mu: make(chan struct{}, 1), bulk: make(chan struct{}, 1)}
	if sc, ok := w.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil && nonblocking(raw) {
			wr.raw = raw
			wr.rawWrite = wr.writeFd
		}
	}
	return wr
}

// SetLimit sets the cap on the bodies w sends (DefaultMaxFrame when maxFrame <= 0), as
// the receiver announced it in the handshake, and names the way they go ("to the child",
// say) for the [FrameTooLargeError]s it returns. It is safe to call while others write.
func (w *Writer) SetLimit(maxFrame int, direction string) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	w.lock()
	w.max, w.dir = maxFrame, direction
	w.unlock()
}

// SetFragments says whether the receiver reassembles [Fragment]s (it said so in the
// handshake): then a message larger than [FragmentSize] goes out in parts, and the small
// frames written meanwhile go between them.
func (w *Writer) SetFragments(on bool) {
	w.lock()
	w.fragments = on
	w.unlock()
}

// Limit returns the cap on the bodies w sends.
func (w *Writer) Limit() int {
	w.lock()
	defer w.unlock()
	return w.max
}

// minSize returns a lower bound of the encoded body's size of a message that carries a
// body, so that one far over the cap is refused before it is encoded; ok is false for
// the others. A type switch, not an assertion to an interface: the runtime would build
// the table entry of each type at its first assertion (in a child, at its first reply).
func minSize(m Wire) (n int, ok bool) {
	switch m := m.(type) {
	case *Message:
		return len(m.Kind) + len(m.Body), true
	case *Request:
		return len(m.Kind) + len(m.Body), true
	case *Reply:
		return len(m.Body) + len(m.Error), true
	case *LogRecord:
		return len(m.Message) + len(m.Logger), true
	}
	return 0, false
}

// SetLateFailure sets the function told of the failure of a frame that
// [Writer.WriteContext] finished after its caller had left (a write deadline of the
// stream that passed, say): the stream may then hold part of a frame, and the receiver
// must be taken as lost. It is safe to call while others write.
func (w *Writer) SetLateFailure(f func(error)) { w.late.Store(&f) }

// Write encodes m and writes it as one frame. A body over the cap is refused with a
// [FrameTooLargeError] and nothing is written; where the message's size is known from
// its fields (the body of a message, request or reply), before it is encoded.
func (w *Writer) Write(m Wire) error {
	return w.WriteContext(context.Background(), m)
}

// WriteContext writes m as [Writer.Write] does, within ctx: a wait for the stream (for
// another writer's frame, or for a full socket to take this one) ends when ctx ends, and
// ctx's error is returned. Nothing of m is written when ctx ends before the lock is taken;
// a frame already begun is finished in the background, within the stream's own write
// deadline, and a failure of it goes to the function set with [Writer.SetLateFailure].
func (w *Writer) WriteContext(ctx context.Context, m Wire) error {
	if err := acquire(ctx, w.mu); err != nil {
		return err
	}
	if n, ok := minSize(m); ok {
		if n > w.max {
			defer w.unlock()
			return &FrameTooLargeError{Size: uint64(n), Max: w.max, Direction: w.dir}
		}
		if w.fragments && n > FragmentSize {
			w.unlock()
			if err := acquire(ctx, w.bulk); err != nil {
				return err
			}
			return w.finish(ctx, func() error {
				defer func() { <-w.bulk }()
				return w.writeFragmented(m)
			})
		}
	}
	b, err := w.encodeLocked(m)
	if err != nil {
		w.unlock()
		return err
	}
	if w.raw != nil {
		b = b[w.tryRaw(b):]
	}
	if len(b) == 0 { // the socket took it all: the common case, with no wait at all
		err := w.writeRest(b)
		w.unlock()
		return err
	}
	if ctx.Done() == nil {
		defer w.unlock()
		return w.writeRest(b)
	}
	return w.finish(ctx, func() error {
		defer w.unlock()
		return w.writeRest(b)
	})
}

// finish runs write, the rest of a frame that must not be left half written, on a
// goroutine of its own, and waits for it within ctx. When ctx ends first, write goes on
// alone and a failure of it goes to the late-failure function.
func (w *Writer) finish(ctx context.Context, write func() error) error {
	if ctx.Done() == nil {
		return write()
	}
	done := make(chan error, 1)
	var claimed atomic.Bool // by the caller leaving, or by write's end, whichever is first
	go func() {
		err := write()
		done <- err
		if !claimed.CompareAndSwap(false, true) && err != nil { // the caller left
			if f := w.late.Load(); f != nil {
				(*f)(err)
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if claimed.CompareAndSwap(false, true) {
			return ctx.Err()
		}
		return <-done
	}
}

// writeFragmented writes m in fragments, one frame lock each, so that other writers'
// small frames go between them; the caller holds w.bulk: one fragmented frame at a time.
func (w *Writer) writeFragmented(m Wire) error {
	body, err := encodeBody(new(fieldEncoder), nil, m)
	if err != nil {
		return err
	}
	w.lock()
	max, dir := w.max, w.dir
	w.unlock()
	if len(body) > max {
		return &FrameTooLargeError{Size: uint64(len(body)), Max: max, Direction: dir}
	}
	if w.markBulk != nil {
		w.markBulk.Store(1)
	}
	for off := 0; off < len(body); off += FragmentSize {
		end := min(off+FragmentSize, len(body))
		f := &Fragment{More: end < len(body), Part: body[off:end]}
		if off == 0 {
			f.Size = uint64(len(body))
		}
		w.lock()
		err := w.writeLocked(f)
		w.unlock()
		if err != nil {
			return err
		}
	}
	if w.markBulk != nil {
		w.markBulk.Store(0)
	}
	return nil
}

// writeLocked encodes m and writes it as one frame; w.mu is held.
func (w *Writer) writeLocked(m Wire) error {
	b, err := w.encodeLocked(m)
	if err != nil {
		return err
	}
	if w.raw != nil {
		b = b[w.tryRaw(b):]
	}
	return w.writeRest(b)
}

// encodeLocked encodes m into the Writer's buffer and returns the frame; w.mu is held.
func (w *Writer) encodeLocked(m Wire) ([]byte, error) {
	b, err := frameInto(&w.enc, w.buf, m)
	if err != nil {
		return nil, err
	}
	w.buf = b
	if len(b)-4 > w.max {
		return nil, &FrameTooLargeError{Size: uint64(len(b) - 4), Max: w.max, Direction: w.dir}
	}
	if w.markFrame != nil && len(b) > w.whole {
		w.markFrame.Store(1) // the frame's first byte goes next, and maybe not its last
	}
	return b, nil
}

// writeRest writes b, the rest of the frame in the Writer's buffer, through the stream's
// Write; w.mu is held.
func (w *Writer) writeRest(b []byte) error {
	var err error
	if len(b) > 0 {
		_, err = w.w.Write(b)
	}
	if err == nil && w.markFrame != nil {
		w.markFrame.Store(0) // its last byte went
	}
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not keep a huge buffer after one large message
	}
	return err
}
