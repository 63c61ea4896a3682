package wire

import (
	"bytes"
	"os"
	"syscall"
	"testing"
)

// A frame larger than a socket takes at once: the writer's system call that does not
// wait sends what fits, its Write the rest. The frame arrives whole.
func TestLargeFrameOverSocketArrivesWhole(t *testing.T) {
	a, b := socketPair(t)
	w := NewWriter(a, 8<<20)
	r := NewReader(b, 8<<20)
	if w.raw == nil || !r.r.quiet {
		t.Fatal("a non-blocking socket is not written and read without the runtime")
	}
	body := make([]byte, 4<<20) // far over a Unix socket's buffer
	for i := range body {
		body[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() { errc <- w.Write(&Message{Kind: "big", Body: body}) }()
	m, err := r.Read()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got, ok := m.(*Message); !ok || got.Kind != "big" || !bytes.Equal(got.Body, body) {
		t.Fatalf("the frame did not arrive whole (%T)", m)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// Over blocking descriptors (files a program opened itself, say) reads and writes are
// plain system calls the runtime sees, since they may wait.
func TestRoundTripOverBlockingSocket(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b") // blocking
	defer a.Close()
	defer b.Close()
	w, r := NewWriter(a, 0), NewReader(b, 0)
	if w.raw != nil || r.r.quiet {
		t.Fatal("a blocking descriptor is taken for a non-blocking one")
	}
	want := &Request{ID: 3, Kind: "echo", Body: []byte("hi")}
	errc := make(chan error, 1)
	go func() { errc <- w.Write(want) }()
	m, err := r.Read()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got, ok := m.(*Request); !ok || got.ID != 3 || string(got.Body) != "hi" {
		t.Fatalf("got %#v, want %#v", m, want)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
}
