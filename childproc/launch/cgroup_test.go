//go:build linux

package launch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The freeze-then-kill path, for kernels without cgroup.kill, empties a cgroup too.
func TestFreezeAndKill(t *testing.T) {
	mount, err := CgroupMount()
	if err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(mount, fmt.Sprintf("procsup-test-%d-freeze", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("no writable cgroup v2: %v", err)
	}
	defer syscall.Rmdir(dir)
	cg, err := OpenCgroups(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	p, err := Start(context.Background(), &Command{Path: "/bin/sh", Args: []string{"-c", "setsid sleep 300 & sleep 300"}}, InCgroup(cg, "freeze", CgroupLimits{}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Cgroup().freezeAndKill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Cgroup().waitEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Wait(ctx); st.Signal != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, want SIGKILL", st)
	}
	if frozen, _ := p.Cgroup().event("frozen"); frozen != 0 {
		t.Fatalf("the cgroup is left frozen")
	}
}

func TestCgroupFiles(t *testing.T) {
	if v, err := parseKey([]byte("populated 1\nfrozen 0\n"), "frozen"); err != nil || v != 0 {
		t.Errorf("frozen: %v %v", v, err)
	}
	if _, err := parseKey([]byte("populated 1\n"), "oom_kill"); err == nil {
		t.Errorf("a missing key read")
	}
	if v, err := parsePressure([]byte("some avg10=12.50 avg60=1.00 avg300=0.00 total=9\nfull avg10=3.00 avg60=0 avg300=0 total=1\n")); err != nil || v != 12.5 {
		t.Errorf("pressure: %v %v", v, err)
	}
	if got := cgroupName("$1/pool/$3 x"); got != "1_pool__3_x" {
		t.Errorf("cgroupName: %q", got)
	}
	if got := unescapeMount(`/sys/fs/cgroup\040x`); got != "/sys/fs/cgroup x" {
		t.Errorf("unescapeMount: %q", got)
	}
}
