package childproc_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/messages"
)

// BenchmarkFrameRoundTrip sends a ping frame to a child and reads its pong: the codec on
// both sides, a real socket pair, a real child. Each iteration also times one round trip
// of the floor (the same bytes echoed unparsed by a raw child), interleaved so both see
// the same machine; ns/op counts the frame round trip alone, x-floor is the ratio.
func BenchmarkFrameRoundTrip(b *testing.B) {
	conn, frame, stop := rawEchoChild()
	defer stop()
	out := make([]byte, len(frame))
	c := start(b, "echo")
	c.initialize(b, &messages.InitializeRequest{})
	var frames, floors time.Duration
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		if err := c.w.Write(&messages.PingRequest{SentAt: int64(i)}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.r.Read(); err != nil {
			b.Fatal(err)
		}
		frames += time.Since(began)
		b.StopTimer()
		began = time.Now()
		conn.Write(frame)
		io.ReadFull(conn, out)
		floors += time.Since(began)
		b.StartTimer()
	}
	b.ReportMetric(float64(frames)/float64(floors), "x-floor")
}

func rawEchoChild() (conn net.Conn, frame []byte, stop func()) {
	p, err := childproctest.StartRawEcho(context.Background())
	if err != nil {
		panic(err)
	}
	frame, _ = messages.Encode(&messages.PingRequest{SentAt: 1 << 40})
	return p.Control(), frame, func() { p.Kill(); p.Wait(context.Background()); p.Close() }
}

// BenchmarkFloorRoundTrip sends the bytes of a ping frame to a child that echoes them
// back unparsed: the floor for BenchmarkFrameRoundTrip.
func BenchmarkFloorRoundTrip(b *testing.B) {
	conn, frame, stop := rawEchoChild()
	b.Cleanup(stop)
	out := make([]byte, len(frame))
	b.ResetTimer()
	for range b.N {
		if _, err := conn.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, out); err != nil {
			b.Fatal(err)
		}
	}
}
