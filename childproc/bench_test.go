package childproc_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
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

// median returns the middle of d (sorted in place).
func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkMinimalChildToReady starts the smallest procsup child (childproctest.Minimal,
// built separately, as a user builds a child) and initializes it: launch.Start, the
// InitializeRequest, its InitializeResponse. Each iteration also starts the smallest Go
// child that answers over a raw socket (childproctest.RawMinimal) until it echoes one
// frame: the floor, interleaved so both see the same machine. Reported: both times to
// ready (medians: a start's time has a long tail on a shared machine), x-raw (their
// ratio), and the binaries' sizes in MB.
func BenchmarkMinimalChildToReady(b *testing.B) {
	minimal := childproctest.Build(b, childproctest.Minimal)
	raw := childproctest.Build(b, childproctest.RawMinimal)
	ready := func() time.Duration {
		began := time.Now()
		p, err := launch.Start(context.Background(), &launch.Command{Path: minimal})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		r, w := wire.NewReader(p.Control(), 0), wire.NewWriter(p.Control(), 0)
		w.Write(&wire.InitializeRequest{PingInterval: time.Second})
		if m, err := r.Read(); err != nil {
			b.Fatal(err)
		} else if _, ok := m.(*wire.InitializeResponse); !ok {
			b.Fatalf("got %T", m)
		}
		d := time.Since(began)
		p.Control().Close() // it exits at the end of its control socket
		p.Wait(context.Background())
		return d
	}
	ready() // the page cache warm for both
	childproctest.ReadyRaw(b, raw)
	procsup, floor := make([]time.Duration, b.N), make([]time.Duration, b.N)
	for i := range b.N {
		procsup[i] = ready()
		floor[i] = childproctest.ReadyRaw(b, raw)
	}
	p, f := median(procsup), median(floor)
	b.ReportMetric(float64(p)/float64(f), "x-raw")
	b.ReportMetric(float64(p.Microseconds())/1000, "procsup-ms")
	b.ReportMetric(float64(f.Microseconds())/1000, "raw-ms")
	for name, path := range map[string]string{"procsup-MB": minimal, "raw-MB": raw} {
		if st, err := os.Stat(path); err == nil {
			b.ReportMetric(float64(st.Size())/(1<<20), name)
		}
	}
}
