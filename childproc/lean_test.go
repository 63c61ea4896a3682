package childproc_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/procsup/procsup/childproc/childproctest"
)

// The runtime does not use log/slog: the smallest child links no code of it or of
// encoding/json, which it brings (more binary, and pages every child keeps resident). A
// child that logs through childlog links them. (fmt and reflect come with msgpack/v5,
// the wire's codec.)
func TestMinimalChildLinksNoSlog(t *testing.T) {
	bin := childproctest.Build(t, childproctest.Minimal)
	out, err := exec.Command("go", "tool", "nm", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool nm: %v\n%s", err, out)
	}
	found := map[string]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 3 || (f[1] != "T" && f[1] != "t") {
			continue // code only
		}
		for _, pkg := range []string{"log/slog.", "encoding/json."} {
			if strings.HasPrefix(f[2], pkg) {
				found[pkg] = f[2]
			}
		}
	}
	for pkg, sym := range found {
		t.Errorf("the minimal child links %s code (%s, among others)", strings.TrimSuffix(pkg, "."), sym)
	}
}
