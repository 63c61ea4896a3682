package childproctest_test

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/childproctest"
)

func TestMain(m *testing.M) { childproctest.Main(m) }

func TestRawEchoEchoesAndExitsOnClose(t *testing.T) {
	actortest.CheckLeaks(t)
	if os.Getenv("GORACE") == "" {
		t.Fatal("Main left GORACE unset: race-built children would sleep at exit")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := childproctest.StartRawEcho(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	in := []byte("\x00\x00\x00\x03abc, not a frame: the raw echo parses nothing")
	if _, err := p.Control().Write(in); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(in))
	if _, err := io.ReadFull(p.Control(), out); err != nil || string(out) != string(in) {
		t.Fatalf("echo: %q, %v", out, err)
	}
	p.Control().Close()
	st, err := p.Wait(ctx)
	if err != nil || st.Code != 0 {
		t.Fatalf("after its socket closed the echo ended with %+v, %v", st, err)
	}
}

func TestEchoFloorRoundTrips(t *testing.T) {
	actortest.CheckLeaks(t)
	floor := childproctest.NewEchoFloor(t, []byte("\x00\x00\x00\x02hi"))
	for range 3 {
		if d := floor.RoundTrip(); d <= 0 {
			t.Fatalf("a round trip of %v", d)
		}
	}
}
