package childproc_test

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/messages"
)

// rawEcho is the floor's child: it copies descriptor 3 back to itself, no codec at all.
func rawEcho() {
	f := os.NewFile(3, "control")
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			os.Exit(0)
		}
		if _, err := f.Write(buf[:n]); err != nil {
			os.Exit(0)
		}
	}
}

// BenchmarkFrameRoundTrip sends a ping frame to a child and reads its pong: the codec on
// both sides, a real socket pair, a real child. Compare with BenchmarkFloorRoundTrip.
func BenchmarkFrameRoundTrip(b *testing.B) {
	floor := floorRoundTrip()
	c := start(b, "echo")
	c.initialize(b, &messages.InitializeRequest{})
	b.ResetTimer()
	for i := range b.N {
		if err := c.w.Write(&messages.PingRequest{SentAt: int64(i)}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.r.Read(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/floor, "x-floor")
}

// floorRoundTrip measures, once per run, the mean of 5000 round trips of the floor (a
// ping frame's bytes echoed unparsed by a child), in nanoseconds.
var floorRoundTrip = sync.OnceValue(func() float64 {
	conn, frame, stop := rawEchoChild()
	defer stop()
	out := make([]byte, len(frame))
	const n = 5000
	began := time.Now()
	for range n {
		conn.Write(frame)
		io.ReadFull(conn, out)
	}
	return float64(time.Since(began).Nanoseconds()) / n
})

func rawEchoChild() (conn net.Conn, frame []byte, stop func()) {
	exe, _ := os.Executable()
	p, err := childproc.Start(context.Background(), &childproc.Command{Path: exe, Env: append(os.Environ(), "PROCSUP_RAW_ECHO=1")})
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
