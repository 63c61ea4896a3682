package childproc_test

import (
	"context"
	"fmt"

	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
)

// Launch a child (here this same binary, re-executed as the registered "echo" entry),
// initialize it, ask it something and shut it down.
func ExampleStart() {
	cmd, err := launch.SelfCommand("echo")
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := launch.Start(context.Background(), cmd)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	r, w := wire.NewReader(p.Control(), 0), wire.NewWriter(p.Control(), 0)

	w.Write(&wire.InitializeRequest{})
	resp, _ := r.Read()
	fmt.Printf("initialized, error %q\n", resp.(*wire.InitializeResponse).Error)

	w.Write(&wire.Request{ID: 1, Kind: "echo", Body: []byte("hello")})
	reply, _ := r.Read()
	fmt.Printf("reply: %s\n", reply.(*wire.Reply).Body)

	w.Write(&wire.ShutdownRequest{Reason: "example over"})
	st, _ := p.Wait(context.Background())
	fmt.Println("exit:", st)
	// Output:
	// initialized, error ""
	// reply: hello
	// exit: exit code 0
}
