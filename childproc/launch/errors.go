//go:build linux

package launch

import (
	"errors"
	"fmt"
)

// ErrBadCommand reports a [Command] that cannot be started as it is (no path, say).
var ErrBadCommand = errors.New("procsup/launch: bad command")

// StartError reports a child that could not be started; Err is the cause, so
// errors.Is(err, exec.ErrNotFound) and errors.Is(err, fs.ErrPermission) work on it.
type StartError struct {
	Path string
	Err  error
}

// Error implements error.
func (e *StartError) Error() string {
	return fmt.Sprintf("procsup/launch: start %s: %v", e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }
