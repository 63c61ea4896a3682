//go:build linux

package childproc

import (
	"os"
	"strconv"
	"sync"
)

var entries sync.Map // name -> Handler

// Register makes h the child program run by [RunEntry] when the environment names entry.
// It lets one binary be both parent and child: the parent starts itself again with
// [SelfCommand], and the new process runs h. Register from init or main, before RunEntry.
func Register(entry string, h Handler) {
	entries.Store(entry, h)
}

// RunEntry runs the registered child program named by [EnvEntry] and exits, or returns
// at once when the variable is not set. Call it first thing in main (or TestMain).
func RunEntry() {
	name, ok := os.LookupEnv(EnvEntry)
	if !ok {
		return
	}
	h, ok := entries.Load(name)
	if !ok {
		os.Stderr.WriteString("procsup/childproc: no entry point " + strconv.Quote(name) + " is registered\n")
		os.Exit(2)
	}
	Main(h.(Handler))
}

// Registered reports whether a child program is registered as entry.
func Registered(entry string) bool {
	_, ok := entries.Load(entry)
	return ok
}
