package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/python"
)

// The example runs as its doc says: answers, an error reply with its code, a crash and
// the restart, a graceful end.
func TestExample(t *testing.T) {
	if _, err := python.Interpreter(); errors.Is(err, python.ErrNoInterpreter) {
		t.Skip(err)
	}
	actortest.CheckLeaks(t)
	var out strings.Builder
	if code := run(&out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{`ask echo: "hello"`, `ask upper: "HELLO"`, `ask fail: error reply "asked to fail", code "failed"`,
		"msg=\"worker ready\"", "py-2 restarted", `ask echo after the restart: "again", <nil>`,
		"closed on request, exit code 0", "done: the tree stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
