package wire

import (
	"testing"
)

// A frame's way through a Reader allocates only what the message keeps: the message,
// and its kind and body (copied out of the reused buffer); and a Writer allocates
// nothing. Anything more is garbage made for every frame of a parent and its children.
func TestFramesAllocateOnlyTheMessage(t *testing.T) {
	body := []byte("0123456789abcdef")
	cases := []struct {
		m    Wire
		want float64 // allocations to read it
	}{
		{&Request{ID: 7, Kind: "echo", Body: body}, 3},
		{&Reply{ID: 7, Body: body}, 2},
		{&PingRequest{SentAt: 1}, 1},
		{&PongResponse{SentAt: 1, ChildTime: 2}, 1},
	}
	for _, c := range cases {
		frame, err := Encode(c.m)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(&endless{frame: frame}, 0)
		if got := testing.AllocsPerRun(500, func() {
			if _, err := r.Read(); err != nil {
				t.Fatal(err)
			}
		}); got > c.want {
			t.Errorf("reading a %s: %v allocations, want %v", c.m.WireType(), got, c.want)
		}
		w := NewWriter(discard{}, 0)
		if got := testing.AllocsPerRun(500, func() {
			if err := w.Write(c.m); err != nil {
				t.Fatal(err)
			}
		}); got > 0 {
			t.Errorf("writing a %s: %v allocations, want none", c.m.WireType(), got)
		}
	}
}

// endless reads frame over and over.
type endless struct {
	frame []byte
	off   int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.frame[e.off:])
	e.off = (e.off + n) % len(e.frame)
	return n, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
