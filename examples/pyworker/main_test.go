package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/python"
)

// The example runs as its doc says, with and without a fork server: answers, an error
// reply with its code, a crash and the restart, a graceful end.
func TestExample(t *testing.T) {
	if _, err := python.Interpreter(); errors.Is(err, python.ErrNoInterpreter) {
		t.Skip(err)
	}
	for _, fork := range []bool{false, true} {
		t.Run(map[bool]string{false: "exec", true: "forkserver"}[fork], func(t *testing.T) {
			actortest.CheckLeaks(t)
			var out strings.Builder
			if code := run(&out, fork); code != 0 {
				t.Fatalf("exit %d:\n%s", code, out.String())
			}
			want := []string{`ask echo: "hello"`, `ask upper: "HELLO"`, `ask fail: error reply "asked to fail", code "failed"`,
				"msg=\"worker ready\"", "py-2 restarted", `ask echo after the restart: "again", <nil>`,
				"closed on request, exit code 0", "done: the tree stopped"}
			if fork {
				want = append(want, "fork server: pid")
			}
			for _, w := range want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
