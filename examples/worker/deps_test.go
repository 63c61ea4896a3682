package main

import (
	"os/exec"
	"strings"
	"testing"
)

// A child program links the child runtime and the wire protocol, and nothing of the
// actor side: no protoactor, OpenTelemetry, Prometheus, gRPC or gopsutil.
func TestTheChildLinksNothingOfTheActorSide(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := []string{
		"github.com/procsup/procsup/childproc",
		"github.com/procsup/procsup/messages/wire",
		"github.com/procsup/procsup/examples/",
		"github.com/vmihailenco/msgpack/",
		"github.com/vmihailenco/tagparser/",
	}
	for _, pkg := range strings.Fields(string(out)) {
		first := strings.Split(pkg, "/")[0]
		if !strings.Contains(first, ".") || first == "vendor" {
			continue // the standard library
		}
		ok := false
		for _, a := range allowed {
			if pkg == strings.TrimSuffix(a, "/") || strings.HasPrefix(pkg, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("examples/worker links %s", pkg)
		}
	}
}
