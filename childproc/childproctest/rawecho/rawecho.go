// Package rawecho is the floor of procsup's benchmarks: a child that copies whatever
// comes on descriptor 3 back to it, with blocking reads, no codec and no runtime.
package rawecho

import "os"

// Serve copies descriptor 3 back to itself until it is closed, then exits 0.
func Serve() {
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
