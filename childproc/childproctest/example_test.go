package childproctest_test

import (
	"context"
	"fmt"
	"io"

	"github.com/procsup/procsup/childproc/childproctest"
)

// A benchmark's floor: bytes through a real child that parses nothing. The test
// binary's TestMain must be childproctest.Main, as in this package's tests.
func ExampleStartRawEcho() {
	ctx := context.Background()
	p, err := childproctest.StartRawEcho(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	p.Control().Write([]byte("hello"))
	buf := make([]byte, 5)
	io.ReadFull(p.Control(), buf)
	fmt.Println(string(buf))
	p.Control().Close() // the echo exits when its socket closes
	st, _ := p.Wait(ctx)
	fmt.Println("exit code", st.Code)
	// Output:
	// hello
	// exit code 0
}
