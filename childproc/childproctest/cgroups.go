package childproctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/childproc/launch"
)

var cgroupTests atomic.Int64

// Cgroups returns a [launch.Cgroups] in a cgroup v2 directory of the test's own, made in
// this machine's cgroup v2 mount (found in /proc/self/mountinfo); it skips the test when
// no writable cgroup v2 is there. When the test ends it fails the test if a child's
// cgroup directory was left behind (after up to 10 s for the ends under way), then
// closes the Cgroups and removes the directory.
func Cgroups(tb testing.TB) *launch.Cgroups {
	tb.Helper()
	mount, err := launch.CgroupMount()
	if err != nil {
		tb.Skipf("no cgroup v2 here: %v", err)
	}
	sweepTestDirs(mount)
	dir := filepath.Join(mount, fmt.Sprintf("procsup-test-%d-%d", os.Getpid(), cgroupTests.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Skipf("no writable cgroup v2 here: %v", err)
	}
	cg, err := launch.OpenCgroups(dir, nil)
	if err != nil {
		syscall.Rmdir(dir)
		tb.Skipf("cgroup v2 at %s is not usable: %v", dir, err)
	}
	tb.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			left := CgroupDirs(cg)
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				tb.Errorf("cgroup directories left behind: %v", left)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := cg.Close(); err != nil {
			tb.Error(err)
		}
		if err := syscall.Rmdir(dir); err != nil {
			tb.Errorf("removing the test's cgroup %s: %v", dir, err)
		}
	})
	return cg
}

// CgroupDirs lists the children's cgroup directories in cg's session.
func CgroupDirs(cg *launch.Cgroups) []string {
	session := cg.Session()
	if session == "" {
		return nil
	}
	ents, _ := os.ReadDir(session)
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, filepath.Join(session, e.Name()))
		}
	}
	return out
}

// sweepTestDirs removes the test directories of test programs that died before their
// cleanup, with whatever their guardians left.
func sweepTestDirs(mount string) {
	ents, _ := os.ReadDir(mount)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "procsup-test-")
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && syscall.Kill(n, 0) != nil {
			removeTree(filepath.Join(mount, e.Name()))
		}
	}
}

// removeTree kills every process in the cgroup dir and its descendants and removes them,
// deepest first.
func removeTree(dir string) {
	if f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0); err == nil {
		f.WriteString("1")
		f.Close()
	}
	for range 100 {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil || strings.Contains(string(b), "populated 0") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	subs, _ := os.ReadDir(dir)
	for _, s := range subs {
		if s.IsDir() {
			removeTree(filepath.Join(dir, s.Name()))
		}
	}
	syscall.Rmdir(dir)
}
