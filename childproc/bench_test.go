package childproc_test

import (
	"testing"
	"time"

	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/messages/wire"
)

// BenchmarkFrameRoundTrip sends a ping frame to a child and reads its pong: the codec on
// both sides, a real socket pair, a real child. Each iteration also times one round trip
// of the floor (the same bytes echoed unparsed by a raw child), interleaved so both see
// the same machine; ns/op counts the frame round trip alone, x-floor is the ratio.
func BenchmarkFrameRoundTrip(b *testing.B) {
	floor := pingFloor(b)
	c := start(b, "echo")
	c.initialize(b, &wire.InitializeRequest{})
	var frames, floors time.Duration
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		if err := c.w.Write(&wire.PingRequest{SentAt: int64(i)}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.r.Read(); err != nil {
			b.Fatal(err)
		}
		frames += time.Since(began)
		b.StopTimer()
		floors += floor.RoundTrip()
		b.StartTimer()
	}
	b.ReportMetric(float64(frames)/float64(floors), "x-floor")
}

// pingFloor is the floor of BenchmarkFrameRoundTrip: a ping frame's bytes echoed
// unparsed.
func pingFloor(b *testing.B) *childproctest.EchoFloor {
	frame, _ := wire.Encode(&wire.PingRequest{SentAt: 1 << 40})
	return childproctest.NewEchoFloor(b, frame)
}

// BenchmarkFloorRoundTrip sends the bytes of a ping frame to a child that echoes them
// back unparsed: the floor for BenchmarkFrameRoundTrip.
func BenchmarkFloorRoundTrip(b *testing.B) {
	floor := pingFloor(b)
	b.ResetTimer()
	for range b.N {
		floor.RoundTrip()
	}
}
