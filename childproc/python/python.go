// Package python finds the Python interpreter for procsup's Python child runtime, the
// package procsup_child in this directory (see its module docstring): a python3 that
// has msgpack.
package python

import (
	"errors"
	"fmt"
	"os/exec"
)

// ErrNoInterpreter: no python3 with msgpack was found.
var ErrNoInterpreter = errors.New("procsup/python: no python3 with msgpack (Debian: apt-get install python3-msgpack)")

// Candidates are the interpreters Interpreter tries, in order: Debian's, whose
// python3-msgpack package the runtime needs, then the python3 first on PATH.
var Candidates = []string{"/usr/bin/python3", "python3"}

// Interpreter returns the path of the first of Candidates that runs and imports msgpack,
// or an error matching ErrNoInterpreter.
func Interpreter() (string, error) {
	for _, c := range Candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import msgpack").Run() == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%w: tried %v", ErrNoInterpreter, Candidates)
}
