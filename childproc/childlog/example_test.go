package childlog_test

import (
	"context"
	"fmt"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childlog"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
)

// hello is the Run of the child in ExampleNew (registered as "hello" in TestMain).
func hello(ctx context.Context, p *childproc.Peer) error {
	childlog.New(p).Info("hello from the child", "n", 42)
	<-ctx.Done()
	return nil
}

// A child logs through slog with childlog.New (hello, above); the parent reads the record
// from the child's log socket (a process actor does this for you and logs it with the
// child's pid). Here the child is this same binary, run as the registered "hello" entry.
func ExampleNew() {
	cmd, _ := launch.SelfCommand("hello")
	p, err := launch.Start(context.Background(), cmd)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	defer p.Wait(context.Background())
	defer p.Kill()
	wire.NewWriter(p.Control(), 0).Write(&wire.InitializeRequest{})
	m, err := wire.NewReader(p.Logs(), 0).Read()
	if err != nil {
		fmt.Println(err)
		return
	}
	rec := m.(*wire.LogRecord)
	fmt.Println(rec.Message, rec.Attrs[0].Key, rec.Attrs[0].Value)
	// Output: hello from the child n 42
}
