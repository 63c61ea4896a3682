//go:build linux

package launch

import (
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
)

// envGuard names the session a guardian watches: set in the environment of this program
// run again as a guardian.
const envGuard = "PROCSUP_CGROUP_GUARD"

// A guardian is this program run again: its package init (below) runs before any main
// and never returns. It reads a pipe whose only writer is the supervising program; the
// end of the pipe means the supervisor is gone, however it died (SIGKILL included), and
// the guardian then kills the session's cgroups and removes them. It has its own process
// group and ignores the terminal's signals, so that a Ctrl-C that kills the supervisor
// does not kill it first.
func init() {
	if session := os.Getenv(envGuard); session != "" {
		guard(session)
	}
}

func guard(session string) {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	io.Copy(io.Discard, os.Stdin) // until the supervisor's end closes
	removeSession(session)
	os.Exit(0)
}

// guardians are the guardians this program runs, by the write end of their pipe.
var guardians struct {
	mu sync.Mutex
	m  map[*os.File]*guardian
}

type guardian struct {
	pid int
	fds []int // the pipe's write end, and the pidfd while it is open
}

// Guardians returns the pids of the cgroup guardians this program started and the
// descriptors it holds for them: they live as long as the program (or until their
// Cgroups is closed), and a leak check should not count them.
func Guardians() (pids, fds []int) {
	guardians.mu.Lock()
	defer guardians.mu.Unlock()
	for _, g := range guardians.m {
		pids = append(pids, g.pid)
		fds = append(fds, g.fds...)
	}
	return pids, fds
}

// startGuard starts the guardian of session and returns the pipe's write end, which
// this program holds open (close-on-exec: no child inherits it) until it dies.
func startGuard(session string) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe") // this program, even if its file was replaced
	cmd.Args = []string{"procsup-cgroup-guard", session}
	cmd.Env = append(os.Environ(), envGuard+"="+session)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	g := &guardian{pid: cmd.Process.Pid, fds: []int{int(w.Fd())}}
	pidfd := openPidfd(cmd.Process.Pid)
	if pidfd != nil {
		g.fds = append(g.fds, int(pidfd.Fd()))
	}
	guardians.mu.Lock()
	if guardians.m == nil {
		guardians.m = map[*os.File]*guardian{}
	}
	guardians.m[w] = g
	guardians.mu.Unlock()
	go func() { // reaps the guardian when it ends: after Close, or killed by hand
		if pidfd != nil {
			waitPidfd(pidfd)
			guardians.mu.Lock()
			g.fds = g.fds[:1] // the pidfd is closed next
			guardians.mu.Unlock()
			pidfd.Close()
		}
		cmd.Wait()
		guardians.mu.Lock()
		g.pid = 0
		guardians.mu.Unlock()
	}()
	return w, nil
}

// dropGuardian forgets the guardian behind w, whose pipe is about to close.
func dropGuardian(w *os.File) {
	guardians.mu.Lock()
	delete(guardians.m, w)
	guardians.mu.Unlock()
}
