package actors_test

import (
	"context"
	"os"
	"testing"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/messages/wire"
)

// The test binary is also the child the benchmarks and examples start.
func TestMain(m *testing.M) {
	childproc.Register("echo", childproc.HandlerFuncs{
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *wire.Request) ([]byte, error) {
			return r.Body, nil
		},
	})
	childproc.Register("crash", childproc.HandlerFuncs{
		RunFunc: func(ctx context.Context, p *childproc.Peer) error { os.Exit(3); return nil },
	})
	childproctest.Main(m)
}
