// Command worker is an example child program for procsup: a process whose behaviour
// (healthy, crashing, hanging, leaking, ignoring shutdown, slow or failing to
// initialize, flooding logs) is chosen by flags. procsup starts it; run alone it says
// so and exits 2.
//
//	worker -mode crash -after 2s -exit-code 3
package main

import (
	"fmt"
	"os"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/examples/workload"
)

func main() {
	o, err := workload.Flags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	childproc.Main(workload.Handler(o))
}
