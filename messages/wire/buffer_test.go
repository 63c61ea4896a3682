package wire

import (
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"
	"time"
)

// TestReaderHoldsNoBufferWhileIdle: a Reader over a socket waits for the next frame
// holding no buffer, reads frames that come in pieces and several to a read, and gives
// its buffer back once the bytes are taken.
func TestReaderHoldsNoBufferWhileIdle(t *testing.T) {
	parent, child := socketPair(t)
	r := NewReader(parent, 0)
	got := make(chan Wire)
	errs := make(chan error, 1)
	go func() {
		for {
			m, err := r.Read()
			if err != nil {
				errs <- err
				return
			}
			got <- m
		}
	}()
	ping, _ := Encode(&PingRequest{SentAt: 1})
	two := append(append([]byte{}, ping...), ping...)
	for _, c := range []struct {
		chunks [][]byte
		frames int
	}{{[][]byte{ping}, 1}, {[][]byte{ping[:2], ping[2:7], ping[7:]}, 1}, {[][]byte{two}, 2}} {
		for _, chunk := range c.chunks {
			if _, err := child.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		for range c.frames {
			if m := <-got; m.(*PingRequest).SentAt != 1 {
				t.Fatalf("read %+v", m)
			}
		}
	}
	// The reader is now waiting on an empty socket: it holds no buffer. (It touches
	// r.r only between reads, and it is blocked in one, waiting for the socket.)
	if r.r.buf != nil {
		t.Fatal("an idle Reader holds a buffer")
	}
	child.Close()
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("after the peer closed: %v, want ErrClosed", err)
	}
}

// TestReaderDeadline: a read deadline on the socket ends a Read waiting for a frame with
// the deadline's error, holding no buffer after it.
func TestReaderDeadline(t *testing.T) {
	parent, _ := socketPair(t)
	parent.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	r := NewReader(parent, 0)
	if _, err := r.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if r.r.buf != nil {
		t.Fatal("a Reader holds a buffer after its deadline")
	}
}

// TestReaderOverPlainReaders: over a reader without a descriptor, one byte at a time or
// with the last bytes and the error in one read, every frame arrives and then the end.
func TestReaderOverPlainReaders(t *testing.T) {
	ping, _ := Encode(&PingRequest{SentAt: 7})
	stream := append(append([]byte{}, ping...), ping...)
	for name, src := range map[string]io.Reader{
		"one byte at a time": iotest.OneByteReader(&sliceReader{b: stream}),
		"data with EOF":      iotest.DataErrReader(&sliceReader{b: stream}),
		"half reads":         iotest.HalfReader(&sliceReader{b: stream}),
	} {
		r := NewReader(src, 0)
		for range 2 {
			m, err := r.Read()
			if err != nil || m.(*PingRequest).SentAt != 7 {
				t.Fatalf("%s: %v %v", name, m, err)
			}
		}
		if _, err := r.Read(); !errors.Is(err, ErrClosed) {
			t.Fatalf("%s: at the end: %v, want ErrClosed", name, err)
		}
		if r.r.buf != nil {
			t.Fatalf("%s: the buffer is held at the end", name)
		}
	}
}

// sliceReader reads b, then io.EOF.
type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}
