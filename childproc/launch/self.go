//go:build linux

package launch

import (
	"fmt"
	"os"

	"github.com/procsup/procsup/childproc"
)

// SelfCommand returns a [Command] that starts this same binary as the child program
// registered as entry (with childproc.Register), with args. It fails for an entry that is not registered.
func SelfCommand(entry string, args ...string) (*Command, error) {
	if !childproc.Registered(entry) {
		return nil, fmt.Errorf("%w: no entry point %q is registered", ErrBadCommand, entry)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: cannot find this program: %v", ErrBadCommand, err)
	}
	return &Command{Path: exe, Args: args, Env: append(os.Environ(), childproc.EnvEntry+"="+entry)}, nil
}
