package childproc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
)

// Shell programs that leave descendants outside the child's process group.
var escapes = map[string]string{
	// A grandchild in a session of its own.
	"setsid": `setsid sleep 300 & echo $!; wait`,
	// A daemon: forked twice, its parent gone, its own session, reparented to init.
	"daemon": `setsid sh -c 'sleep 300 & echo $!' ; sleep 300`,
}

// startShell starts sh -c script (in cg when not nil) and returns it with the pids it
// prints on its first line.
func startShell(t *testing.T, script string, opts ...launch.Option) (*launch.Process, int) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := launch.Start(context.Background(), &launch.Command{Path: "/bin/sh", Args: []string{"-c", script}, Stdout: pw}, opts...)
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	pr.Close()
	if err != nil {
		t.Fatalf("reading the descendant's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !actortest.Alive(pid) {
		t.Fatalf("descendant %q not running", line)
	}
	// $! is printed at the fork: wait until the descendant has made its own session.
	within(t, time.Minute, "the descendant in a session of its own", func() bool {
		sid := sessionOf(pid)
		return sid != 0 && sid != sessionOf(p.Pid())
	})
	return p, pid
}

// With a cgroup, the end of a child leaves none of its descendants, whatever session
// they made, and removes the child's cgroup.
func TestCgroupContainsWhatLeavesTheGroup(t *testing.T) {
	actortest.CheckLeaks(t)
	cg := childproctest.Cgroups(t)
	for name, script := range escapes {
		t.Run(name, func(t *testing.T) {
			p, escapee := startShell(t, script, launch.InCgroup(cg, "escape/"+name, launch.CgroupLimits{}))
			dir := p.Cgroup().Dir()
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(escapee) + "/cgroup"); err != nil || !strings.Contains(string(b), filepath.Base(dir)) {
				t.Fatalf("the descendant's cgroup: %s (%v), want %s", b, err, dir)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.KillGroupAndWait(ctx); err != nil {
				t.Fatal(err)
			}
			if actortest.Alive(escapee) || p.Cgroup().Populated() {
				t.Fatalf("descendant %d survived the child's end (cgroup populated: %v)", escapee, p.Cgroup().Populated())
			}
			p.Wait(ctx)
			p.Close()
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the child's cgroup %s is still there (%v)", dir, err)
			}
		})
	}
}

// Without a cgroup the process group is the unit: a descendant that calls setsid escapes
// it. This is what the README says can escape, shown.
func TestWithoutCgroupSetsidEscapes(t *testing.T) {
	actortest.CheckLeaks(t)
	p, escapee := startShell(t, escapes["setsid"])
	defer syscall.Kill(escapee, syscall.SIGKILL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.KillGroupAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	p.Wait(ctx)
	p.Close()
	if !actortest.Alive(escapee) {
		t.Fatalf("descendant %d did not escape the group: the README's warning is wrong", escapee)
	}
}

// The cgroup's CPU time covers the child and its descendants.
func TestCgroupCPUAddsUp(t *testing.T) {
	actortest.CheckLeaks(t)
	cg := childproctest.Cgroups(t)
	p, busy := startShell(t, `setsid sh -c 'while :; do :; done' & echo $!; while :; do :; done`, launch.InCgroup(cg, "busy", launch.CgroupLimits{}))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.KillGroupAndWait(ctx)
		p.Wait(ctx)
		p.Close()
	}()
	within(t, time.Minute, "both busy for 100 ms of CPU", func() bool {
		return cpuOf(p.Pid()) > 100*time.Millisecond && cpuOf(busy) > 100*time.Millisecond
	})
	sum := cpuOf(p.Pid()) + cpuOf(busy)
	st, err := p.Cgroup().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPU < sum {
		t.Fatalf("the cgroup's CPU %v is less than its two processes' %v", st.CPU, sum)
	}
	if st.CPU > sum+time.Second {
		t.Fatalf("the cgroup's CPU %v is far above its two processes' %v", st.CPU, sum)
	}
}

// cpuOf reads a process's user and system time from /proc.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100 // USER_HZ
}

// When the supervising program is SIGKILLed, its guardian kills its children's cgroups:
// the descendant that left the group dies too, and the session is removed.
func TestCgroupGuardianOnSupervisorDeath(t *testing.T) {
	actortest.CheckLeaks(t)
	cg := childproctest.Cgroups(t) // for its directory: the supervisor opens its own session there
	line := killMiddle(t, "cgroupsupervisor", "CGROUP_DIR="+cg.Dir())
	var escapee int
	var session string
	fmt.Sscan(line, &escapee, &session)
	within(t, time.Minute, "the escapee killed by the guardian", func() bool { return !actortest.Alive(escapee) })
	within(t, time.Minute, "the session removed by the guardian", func() bool {
		_, err := os.Stat(session)
		return errors.Is(err, os.ErrNotExist)
	})
}

// cgroupSupervisor opens cgroups in CGROUP_DIR, starts a shell whose grandchild leaves
// the group, prints the grandchild's pid and the session, and waits.
func cgroupSupervisor() childproc.Handler {
	return childproc.HandlerFuncs{
		RunFunc: func(ctx context.Context, _ *childproc.Peer) error {
			cg, err := launch.OpenCgroups(os.Getenv("CGROUP_DIR"), nil)
			if err != nil {
				return err
			}
			pr, pw, _ := os.Pipe()
			child, err := launch.Start(ctx, &launch.Command{Path: "/bin/sh", Args: []string{"-c", escapes["setsid"]}, Stdout: pw}, launch.InCgroup(cg, "worker", launch.CgroupLimits{}))
			pw.Close()
			if err != nil {
				return err
			}
			line, _ := bufio.NewReader(pr).ReadString('\n')
			fmt.Println(strings.TrimSpace(line), cg.Session())
			<-ctx.Done()
			child.Kill()
			return nil
		},
	}
}

// Bad cgroup directories are refused with a clear error.
func TestCgroupBadDirectories(t *testing.T) {
	for _, dir := range []string{"", t.TempDir(), "/nonexistent/cgroup"} {
		if _, err := launch.OpenCgroups(dir, nil); !errors.Is(err, launch.ErrBadCgroup) {
			t.Errorf("OpenCgroups(%q): %v, want ErrBadCgroup", dir, err)
		}
	}
	cg := childproctest.Cgroups(t)
	if err := cg.Check(launch.CgroupLimits{PidsMax: -1}); !errors.Is(err, launch.ErrBadCgroup) {
		t.Errorf("a negative limit: %v", err)
	}
}

// sessionOf reads a process's session id from /proc.
func sessionOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// Limits in the supervising program's own cgroup break cgroup v2's rule (a cgroup that
// hands controllers down holds no process): refused with ErrBadCgroup. The check runs in
// a child that moves itself into a cgroup of its own first.
func TestCgroupLimitsInOwnCgroupRefused(t *testing.T) {
	actortest.CheckLeaks(t)
	cg := childproctest.Cgroups(t)
	own := filepath.Join(cg.Dir(), "own")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	defer syscall.Rmdir(own)
	c := start(t, "owncgroup", "OWN_CGROUP="+own)
	c.initialize(t, &wire.InitializeRequest{})
	if st := c.wait(t); st.Code != 0 {
		t.Fatalf("the child's check failed: %v (see its stderr)", st)
	}
}

// ownCgroupChild moves itself into OWN_CGROUP and checks that limits there are refused
// and that no limits are accepted; it exits 0 when both hold.
func ownCgroupChild() childproc.Handler {
	return childproc.HandlerFuncs{
		RunFunc: func(ctx context.Context, _ *childproc.Peer) error {
			dir := os.Getenv("OWN_CGROUP")
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("0"), 0); err != nil {
				return fmt.Errorf("moving into %s: %w", dir, err)
			}
			defer os.WriteFile(filepath.Join(filepath.Dir(dir), "cgroup.procs"), []byte("0"), 0) // out again, so it can be removed
			cg, err := launch.OpenCgroups(dir, nil)
			if err != nil {
				return err
			}
			if err := cg.Check(launch.CgroupLimits{PidsMax: 10}); !errors.Is(err, launch.ErrBadCgroup) {
				return fmt.Errorf("limits in the program's own cgroup: %v, want ErrBadCgroup", err)
			}
			if err := cg.Check(launch.CgroupLimits{}); err != nil {
				return fmt.Errorf("no limits in the program's own cgroup: %v", err)
			}
			return nil
		},
	}
}
