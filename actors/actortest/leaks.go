package actortest

import (
	"fmt"
	"github.com/procsup/procsup/childproc/launch"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// LeakTimeout is how long [CheckLeaks] waits for goroutines, descriptors and child
// processes to go away before it fails the test.
const LeakTimeout = 10 * time.Second

// CheckLeaks records this process's goroutines and open descriptors now and, when the
// test ends, fails it if more of either remain, or if any child process of this process
// is still alive (a zombie included). It waits up to [LeakTimeout] for them to settle,
// polling. Call it first in a test, before anything that starts goroutines or processes.
func CheckLeaks(t testing.TB) {
	t.Helper()
	goroutines := CountGoroutines()
	fds := CountFDs()
	t.Cleanup(func() {
		deadline := time.Now().Add(LeakTimeout)
		for {
			g, f, kids := CountGoroutines(), CountFDs(), ChildPIDs()
			if g <= goroutines && f <= fds && len(kids) == 0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leaked: goroutines %d -> %d, descriptors %d -> %d, child processes %v\n%s\n%s",
					goroutines, g, fds, f, kids, fdList(), buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// longLived names goroutines that live as long as the program once started, by a
// function on their stack: they are not leaks.
var longLived = []string{
	"procsup/childproc/launch.onStarterThread", // the one thread every child is started from
	"procsup/childproc/launch.startGuard",      // the reaper of a cgroup guardian (see launch.Guardians)
}

// CountGoroutines counts goroutines, except the few that live as long as the program
// (procsup's starter thread).
func CountGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, name := range longLived {
			if strings.Contains(g, name) {
				continue next
			}
		}
		count++
	}
	return count
}

// CountFDs returns how many descriptors this process has open, except those it holds
// for its cgroup guardians (see launch.Guardians).
func CountFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	_, guard := launch.Guardians()
	return len(ents) - 1 - len(guard) // the directory's own descriptor
}

func fdList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), target)
	}
	return b.String()
}

// CountThreads returns how many OS threads this process has.
func CountThreads() int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	return len(ents)
}

// ChildPIDs returns the pids of this process's child processes, zombies included,
// except its cgroup guardians (see launch.Guardians).
func ChildPIDs() []int {
	guards, _ := launch.Guardians()
	return processes(func(pid, ppid, _ int) bool { return ppid == os.Getpid() && !slices.Contains(guards, pid) })
}

// GroupPIDs returns the pids of the live (not zombie) processes in process group pgid.
func GroupPIDs(pgid int) []int {
	return processes(func(pid, _, pg int) bool { return pg == pgid && Alive(pid) })
}

// Alive reports whether pid is a process that exists and is not a zombie.
func Alive(pid int) bool { return launch.Alive(pid) }

func processes(match func(pid, ppid, pgid int) bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := statFields(string(st))
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgid, _ := strconv.Atoi(f[2])
		if match(pid, ppid, pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// statFields returns the fields of /proc/<pid>/stat after the command name: state, ppid,
// pgrp, ...
func statFields(st string) []string {
	i := strings.LastIndexByte(st, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(st[i+1:])
}
