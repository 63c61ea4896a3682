// Command rawminimal is the smallest Go child that answers over a raw socket: it echoes
// descriptor 3. Benchmarks build it as the floor of a child's start (see minimal).
package main

import "github.com/procsup/procsup/childproc/childproctest/rawecho"

func main() { rawecho.Serve() }
