// Command minimal is the smallest procsup child: it initializes, answers pings and echoes
// requests. Benchmarks build it to compare a child's start with rawminimal's.
package main

import (
	"context"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/messages/wire"
)

func main() {
	childproc.Main(childproc.HandlerFuncs{
		QuickRequests: true, // an echo never waits: answered on the read loop
		RequestFunc:   func(_ context.Context, _ *childproc.Peer, r *wire.Request) ([]byte, error) { return r.Body, nil },
	})
}
