package wire

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"
)

// A reader's mark is set while the stream is read into a frame, and clear while it
// waits between frames.
func TestReaderMarkCoversAFrameCutShort(t *testing.T) {
	a, b := socketPair(t)
	var mark atomic.Uint32
	r := NewReader(b, 0)
	r.SetMark(&mark)
	frame, err := Encode(&Message{Kind: "k", Body: bytes.Repeat([]byte("x"), 1000)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := r.Read()
		got <- err
	}()
	a.Write(frame[:100]) // a frame cut short: the reader takes it and waits for the rest
	waitMark(t, &mark, 1)
	a.Write(frame[100:])
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := r.Read()
		got <- err
	}()
	waitMark(t, &mark, 0) // waiting between frames
	a.Write(frame)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// The parts of a fragmented frame keep it set until the last one.
	big := &Message{Kind: "big", Body: bytes.Repeat([]byte("y"), 3*FragmentSize)}
	w := NewWriter(a, 0)
	w.SetFragments(true)
	read := make(chan Wire, 1)
	var cut atomic.Bool
	go func() {
		for {
			m, err := r.Read()
			if err != nil {
				got <- err
				return
			}
			if _, ok := m.(*Message); ok && m.(*Message).Kind == "big" {
				read <- m
				return
			}
		}
	}()
	go func() {
		body, _ := encodeBody(new(fieldEncoder), nil, big)
		f := &Fragment{Size: uint64(len(body)), More: true, Part: body[:FragmentSize]}
		if err := w.Write(f); err != nil {
			got <- err
			return
		}
		for mark.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cut.Store(true)
		w.Write(&Fragment{More: false, Part: body[FragmentSize:]})
	}()
	m := <-read
	if !cut.Load() {
		t.Fatal("the mark was clear between two fragments")
	}
	if len(m.(*Message).Body) != 3*FragmentSize {
		t.Fatalf("body of %d bytes", len(m.(*Message).Body))
	}
}

// A writer's marks are clear after whole frames, and stay set after a write cut short.
func TestWriterMarksStaySetAfterAWriteCutShort(t *testing.T) {
	a, b := socketPair(t)
	defer b.Close()
	var frame, bulk atomic.Uint32
	w := NewWriter(a, 0)
	w.SetMarks(&frame, &bulk)
	w.SetFragments(true)
	if err := w.Write(&Message{Kind: "small"}); err != nil {
		t.Fatal(err)
	}
	if frame.Load() != 0 || bulk.Load() != 0 {
		t.Fatalf("marks %d %d after a whole frame", frame.Load(), bulk.Load())
	}
	// Nobody reads b: a 4 MiB message fills the socket, and the write fails midway.
	a.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	if err := w.Write(&Message{Kind: "big", Body: make([]byte, 4<<20)}); err == nil {
		t.Fatal("a 4 MiB write to a socket nobody reads went through")
	}
	if frame.Load() == 0 || bulk.Load() == 0 {
		t.Fatalf("marks %d %d after a write cut short", frame.Load(), bulk.Load())
	}
}

func waitMark(t *testing.T, m *atomic.Uint32, want uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("mark %d, want %d", m.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWholePrefix(t *testing.T) {
	small, _ := Encode(&Message{Kind: "k", Body: []byte("fragmentary")})
	frag, _ := Encode(&Fragment{Size: 10, More: true, Part: []byte("0123")})
	for _, c := range []struct {
		name string
		b    []byte
		want int
	}{
		{"one", small, len(small)},
		{"two", append(append([]byte{}, small...), small...), 2 * len(small)},
		{"cut header", append(append([]byte{}, small...), small[:3]...), len(small)},
		{"cut body", small[:len(small)-1], 0},
		{"a fragment", append(append([]byte{}, small...), frag...), len(small)},
		{"a fragment first", frag, 0},
	} {
		if got := wholePrefix(c.b); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
