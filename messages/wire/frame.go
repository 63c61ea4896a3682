package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/vmihailenco/msgpack/v5"
)

// DefaultMaxFrame is the default cap on a frame's body: 16 MiB.
const DefaultMaxFrame = 16 << 20

// FragmentSize is the largest part of a large frame in one [Fragment]: a small frame
// waits behind at most one part.
const FragmentSize = 256 << 10

// readBuffer is a Reader's buffer: small, because a parent holds two readers per child;
// a larger body is read straight into its own allocation.
const readBuffer = 4 << 10

// envelope is the msgpack body of every frame: the type and the message's own fields.
type envelope struct {
	Type Type               `msgpack:"type"`
	Data msgpack.RawMessage `msgpack:"data"`
}

// Encode returns the frame for m: the 4-byte big-endian length and the msgpack body.
func Encode(m Wire) ([]byte, error) {
	var buf bytes.Buffer
	return frameInto(&buf, nil, m)
}

// frameInto encodes m's frame, the length prefix and the body, into buf (reset first)
// with enc (one from msgpack's pool when nil) and returns it.
func frameInto(buf *bytes.Buffer, enc *msgpack.Encoder, m Wire) ([]byte, error) {
	buf.Reset()
	buf.Write([]byte{0, 0, 0, 0})
	if err := encodeBody(buf, enc, m); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// encodeBody writes m's body to buf with enc (one from msgpack's pool when nil): the
// envelope's map header and type, then the message's fields straight into buf (no copy
// of a large body through an intermediate).
func encodeBody(buf *bytes.Buffer, enc *msgpack.Encoder, m Wire) error {
	if sm, ok := m.(sized); ok {
		buf.Grow(sm.minSize() + 256) // one allocation for a large body, not a doubling series
	}
	if enc == nil {
		enc = msgpack.GetEncoder()
		defer msgpack.PutEncoder(enc)
	}
	enc.Reset(buf)
	if err := enc.EncodeMapLen(2); err != nil {
		return err
	}
	enc.EncodeString("type")
	enc.EncodeString(string(m.WireType()))
	enc.EncodeString("data")
	if fc, ok := m.(fieldCodec); ok {
		return fc.encodeFields(enc)
	}
	return enc.Encode(m)
}

// Decode decodes one frame body (without its length prefix). It checks the body's shape
// before decoding, so that no input makes it allocate more than a small multiple of
// len(body). Errors match [ErrUnknownType] or [ErrMalformed].
func Decode(body []byte) (Wire, error) { return decode(body, nil) }

// decode is Decode with dec (one from msgpack's pool when nil).
func decode(body []byte, dec *msgpack.Decoder) (Wire, error) {
	if len(body) == 0 {
		return nil, &DecodeError{Err: errors.New("empty frame")}
	}
	if err := checkShape(body); err != nil {
		return nil, &DecodeError{Err: err}
	}
	if !isMap(body[0]) {
		return nil, &DecodeError{Err: errors.New("the body is not a map")}
	}
	if m, ok, err := decodeTypeFirst(body, dec); ok {
		return m, err
	}
	var env envelope
	if err := msgpack.Unmarshal(body, &env); err != nil {
		return nil, &DecodeError{Err: err}
	}
	if env.Type == "" {
		return nil, &DecodeError{Err: errors.New("no message type")}
	}
	m := newWire(env.Type)
	if m == nil {
		return nil, &UnknownTypeError{Type: string(env.Type)}
	}
	if len(env.Data) > 0 {
		if !isMap(env.Data[0]) && env.Data[0] != 0xc0 {
			return nil, &DecodeError{Type: string(env.Type), Err: errors.New("data is not a map")}
		}
		if err := msgpack.Unmarshal(env.Data, m); err != nil {
			return nil, &DecodeError{Type: string(env.Type), Err: err}
		}
	}
	return m, nil
}

// decodeTypeFirst decodes a body whose map has exactly "type" then "data", as this
// package writes it, decoding the fields straight from body (a large body is copied once,
// not twice). ok is false for any other layout, which Decode then reads the general way.
func decodeTypeFirst(body []byte, dec *msgpack.Decoder) (m Wire, ok bool, err error) {
	if dec == nil {
		dec = msgpack.GetDecoder()
		defer msgpack.PutDecoder(dec)
	}
	br := bytes.NewReader(body)
	dec.Reset(br)
	if n, err := dec.DecodeMapLen(); err != nil || n != 2 {
		return nil, false, nil
	}
	if k, err := dec.DecodeString(); err != nil || k != "type" {
		return nil, false, nil
	}
	t, err := dec.DecodeString()
	if err != nil {
		return nil, false, nil
	}
	if k, err := dec.DecodeString(); err != nil || k != "data" {
		return nil, false, nil
	}
	if t == "" {
		return nil, true, &DecodeError{Err: errors.New("no message type")}
	}
	if m = newWire(Type(t)); m == nil {
		return nil, true, &UnknownTypeError{Type: t}
	}
	if c, err := dec.PeekCode(); err == nil && !isMap(c) && c != 0xc0 {
		return nil, true, &DecodeError{Type: t, Err: errors.New("data is not a map")}
	}
	if fc, ok := m.(fieldCodec); ok {
		_, fragment := m.(*Fragment)
		d := &fieldDecoder{dec: dec, br: br, frame: body, alias: fragment || len(body) > aliasAbove}
		if err := decodeFields(d, fc); err != nil {
			return nil, true, &DecodeError{Type: t, Err: err}
		}
		return m, true, nil
	}
	if err := dec.Decode(m); err != nil {
		return nil, true, &DecodeError{Type: t, Err: err}
	}
	return m, true, nil
}

// isMap reports whether c starts a msgpack map.
func isMap(c byte) bool { return c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf }

// Reader reads frames from a stream. It is not safe for concurrent use: one goroutine
// reads, as the parent's reader actor and the child runtime's read loop do.
type Reader struct {
	r       *bufio.Reader
	max     int
	dir     string
	partial []byte // the parts of a fragmented frame so far
	scratch []byte // reused for frames up to scratchMax
	dec     *msgpack.Decoder
}

// NewReader returns a Reader over r that rejects bodies larger than maxFrame bytes
// (DefaultMaxFrame when maxFrame <= 0).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Reader{r: bufio.NewReaderSize(r, readBuffer), max: maxFrame, dec: msgpack.NewDecoder(nil)}
}

// Limit returns the largest body r accepts.
func (r *Reader) Limit() int { return r.max }

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
		m, err := decode(body, r.dec)
		f, ok := m.(*Fragment)
		if !ok {
			return m, err
		}
		whole, err := r.assemble(f)
		if err != nil || whole == nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		m, err = decode(whole, r.dec)
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

// readFrame reads the next frame's body, into the reader's reused buffer when scratch is
// set and the frame fits.
func (r *Reader) readFrame(scratch bool) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		switch {
		case err == io.EOF:
			return nil, ErrClosed
		case err == io.ErrUnexpectedEOF:
			return nil, &DecodeError{Err: err}
		case errors.Is(err, syscall.ECONNRESET):
			// The peer closed with data of ours unread: closed all the same.
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
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

// Writer writes frames to a stream. It is safe for concurrent use: each frame goes out in
// one Write call under a lock, so frames from several goroutines never interleave.
type Writer struct {
	mu        sync.Mutex // held for one frame
	bulk      sync.Mutex // held for the whole of a fragmented frame
	w         io.Writer
	max       int
	dir       string
	fragments bool // the receiver reads fragments
	buf       bytes.Buffer
	enc       *msgpack.Encoder // for buf, under mu
}

// NewWriter returns a Writer over w that refuses to send bodies larger than maxFrame
// bytes (DefaultMaxFrame when maxFrame <= 0).
func NewWriter(w io.Writer, maxFrame int) *Writer {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Writer{w: w, max: maxFrame, enc: msgpack.NewEncoder(nil)}
}

// SetLimit sets the cap on the bodies w sends (DefaultMaxFrame when maxFrame <= 0), as
// the receiver announced it in the handshake, and names the way they go ("to the child",
// say) for the [FrameTooLargeError]s it returns. It is safe to call while others write.
func (w *Writer) SetLimit(maxFrame int, direction string) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	w.mu.Lock()
	w.max, w.dir = maxFrame, direction
	w.mu.Unlock()
}

// SetFragments says whether the receiver reassembles [Fragment]s (it said so in the
// handshake): then a message larger than [FragmentSize] goes out in parts, and the small
// frames written meanwhile go between them.
func (w *Writer) SetFragments(on bool) {
	w.mu.Lock()
	w.fragments = on
	w.mu.Unlock()
}

// Limit returns the cap on the bodies w sends.
func (w *Writer) Limit() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}

// sized is a message that knows a lower bound of its encoded body's size, so that one
// far over the cap is refused before it is encoded.
type sized interface{ minSize() int }

func (m *Message) minSize() int   { return len(m.Kind) + len(m.Body) }
func (m *Request) minSize() int   { return len(m.Kind) + len(m.Body) }
func (m *Reply) minSize() int     { return len(m.Body) + len(m.Error) }
func (m *LogRecord) minSize() int { return len(m.Message) + len(m.Logger) }

// Write encodes m and writes it as one frame. A body over the cap is refused with a
// [FrameTooLargeError] and nothing is written; where the message's size is known from
// its fields (the body of a message, request or reply), before it is encoded.
func (w *Writer) Write(m Wire) error {
	w.mu.Lock()
	if s, ok := m.(sized); ok {
		if s.minSize() > w.max {
			defer w.mu.Unlock()
			return &FrameTooLargeError{Size: uint64(s.minSize()), Max: w.max, Direction: w.dir}
		}
		if w.fragments && s.minSize() > FragmentSize {
			w.mu.Unlock()
			return w.writeFragmented(m)
		}
	}
	defer w.mu.Unlock()
	return w.writeLocked(m)
}

// writeFragmented writes m in fragments, one frame lock each, so that other writers'
// small frames go between them; one fragmented frame at a time.
func (w *Writer) writeFragmented(m Wire) error {
	w.bulk.Lock()
	defer w.bulk.Unlock()
	var buf bytes.Buffer
	if err := encodeBody(&buf, nil, m); err != nil {
		return err
	}
	body := buf.Bytes()
	w.mu.Lock()
	max, dir := w.max, w.dir
	w.mu.Unlock()
	if len(body) > max {
		return &FrameTooLargeError{Size: uint64(len(body)), Max: max, Direction: dir}
	}
	for off := 0; off < len(body); off += FragmentSize {
		end := min(off+FragmentSize, len(body))
		f := &Fragment{More: end < len(body), Part: body[off:end]}
		if off == 0 {
			f.Size = uint64(len(body))
		}
		w.mu.Lock()
		err := w.writeLocked(f)
		w.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// writeLocked encodes m and writes it as one frame; w.mu is held.
func (w *Writer) writeLocked(m Wire) error {
	b, err := frameInto(&w.buf, w.enc, m)
	if err != nil {
		return err
	}
	if len(b)-4 > w.max {
		return &FrameTooLargeError{Size: uint64(len(b) - 4), Max: w.max, Direction: w.dir}
	}
	_, err = w.w.Write(b)
	if w.buf.Cap() > 1<<20 {
		w.buf = bytes.Buffer{} // do not keep a huge buffer after one large message
	}
	return err
}
