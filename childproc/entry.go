//go:build linux

package childproc

import (
	"fmt"
	"os"
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
		fmt.Fprintf(os.Stderr, "procsup/childproc: no entry point %q is registered\n", name)
		os.Exit(2)
	}
	Main(h.(Handler))
}

// SelfCommand returns a [Command] that starts this same binary as the child program
// registered as entry, with args. It fails for an entry that is not registered.
func SelfCommand(entry string, args ...string) (*Command, error) {
	if _, ok := entries.Load(entry); !ok {
		return nil, fmt.Errorf("%w: no entry point %q is registered", ErrBadCommand, entry)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: cannot find this program: %v", ErrBadCommand, err)
	}
	return &Command{Path: exe, Args: args, Env: append(os.Environ(), EnvEntry+"="+entry)}, nil
}
