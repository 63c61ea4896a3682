package childproc_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// On another system the build stops with one error that says Linux only, not with the
// Linux calls it lacks.
func TestOtherSystemsAreToldLinuxOnly(t *testing.T) {
	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("childproc built for darwin")
	}
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ".go:") {
			errs = append(errs, line)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "procsup_builds_on_linux_only") {
		t.Fatalf("the build for darwin said:\n%s", out)
	}
}
