package actors_test

import (
	"context"
	"os"
	"testing"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/messages"
)

// The test binary is also the child the benchmarks and examples start.
func TestMain(m *testing.M) {
	childproc.Register("echo", childproc.HandlerFuncs{
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *messages.Request) ([]byte, error) {
			return r.Body, nil
		},
	})
	childproc.Register("crash", childproc.HandlerFuncs{
		RunFunc: func(ctx context.Context, p *childproc.Peer) error { os.Exit(3); return nil },
	})
	if os.Getenv("PROCSUP_RAW_ECHO") != "" {
		rawEcho()
	}
	childproc.RunEntry()
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

// rawEcho copies descriptor 3 back to itself: the floors' child, no codec, no runtime.
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
