// Command echo starts itself again as a supervised child with childproc, talks to it over
// the wire protocol (a request, a ping, a log record) and shuts it down.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childlog"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
)

func main() {
	childproc.Register("upper", childproc.HandlerFuncs{
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *wire.Request) ([]byte, error) {
			childlog.New(p).Info("upper-casing", "bytes", len(r.Body))
			return []byte(strings.ToUpper(string(r.Body))), nil
		},
	})
	childproc.RunEntry() // in the child, this runs "upper" and exits

	cmd, err := launch.SelfCommand("upper")
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	p, err := launch.Start(context.Background(), cmd)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	r, w := wire.NewReader(p.Control(), 0), wire.NewWriter(p.Control(), 0)
	must(w.Write(&wire.InitializeRequest{PingInterval: time.Second, PingTimeout: 10 * time.Second}))
	resp := read[*wire.InitializeResponse](r)
	fmt.Printf("child %d initialized (error %q)\n", p.Pid(), resp.Error)

	must(w.Write(&wire.Request{ID: 1, Kind: "upper", Body: []byte("hello, child")}))
	fmt.Printf("reply: %s\n", read[*wire.Reply](r).Body)

	began := time.Now()
	must(w.Write(&wire.PingRequest{SentAt: began.UnixNano()}))
	read[*wire.PongResponse](r)
	fmt.Printf("ping round trip: %v\n", time.Since(began).Round(time.Microsecond))

	lm, err := wire.NewReader(p.Logs(), 0).Read()
	must(err)
	fmt.Printf("child log: %s\n", lm.(*wire.LogRecord).Message)

	must(w.Write(&wire.ShutdownRequest{Reason: "done"}))
	fmt.Printf("child says: %s\n", read[*wire.Exiting](r).Reason)
	st, err := p.Wait(context.Background())
	must(err)
	fmt.Printf("child exited: %v\n", st)
}

func read[T wire.Wire](r *wire.Reader) T {
	m, err := r.Read()
	must(err)
	t, ok := m.(T)
	if !ok {
		log.Fatalf("got %T, want %T", m, t)
	}
	return t
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
