package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/examples/workload"
)

// The test binary is the tree program (TREE_MAIN) and its workers (the entry).
func TestMain(m *testing.M) {
	if os.Getenv(childproc.EnvEntry) == "worker" {
		o, err := workload.Flags(os.Args[1:])
		if err != nil {
			os.Exit(2)
		}
		childproc.Main(workload.Handler(o))
	}
	if os.Getenv("TREE_MAIN") != "" {
		os.Exit(run(strings.Fields(os.Getenv("TREE_MAIN")), os.Stdout))
	}
	childproctest.Main(m)
}

// The tree runs until SIGTERM, prints every kind of event, shuts down with exit status 0
// and leaves no process behind.
func TestTreeRunsAndShutsDownOnSIGTERM(t *testing.T) {
	actortest.CheckLeaks(t)
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "TREE_MAIN=-duration 2m -workers 1")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	want := map[string]*regexp.Regexp{
		"running":        regexp.MustCompile(`state initializing -> running`),
		"crash":          regexp.MustCompile(`crashed, exit code 3`),
		"restart":        regexp.MustCompile(`restart #\d+ in \d+`),
		"unresponsive":   regexp.MustCompile(`unresponsive, signal killed, killed`),
		"memory warning": regexp.MustCompile(`memory warning: \d+ MB`),
		"memory limit":   regexp.MustCompile(`memory limit exceeded, signal killed, killed`),
		"init failed":    regexp.MustCompile(`initialization failed`),
		"init timeout":   regexp.MustCompile(`initialization timed out`),
		"child log":      regexp.MustCompile(`log INFO: worker ready`),
		"plain output":   regexp.MustCompile(`daemon +log INFO: daemon forked, pid \d+`),
	}
	seen := map[string]bool{}
	var out strings.Builder
	pids := map[int]bool{}
	pidRE := regexp.MustCompile(`\(pid (\d+)\)`)
	sc := bufio.NewScanner(stdout)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	sent := false
	for line := range lines {
		out.WriteString(line + "\n")
		for k, re := range want {
			if re.MatchString(line) {
				seen[k] = true
			}
		}
		if m := pidRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n > 0 {
				pids[n] = true
			}
		}
		if !sent && len(seen) == len(want) {
			cmd.Process.Signal(syscall.SIGTERM)
			sent = true
		}
		select {
		case <-deadline:
			if !sent {
				cmd.Process.Signal(syscall.SIGTERM)
				sent = true
			}
		default:
		}
	}
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("tree exited with %v; output:\n%s", err, out.String())
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("no %s event printed", k)
		}
	}
	for _, s := range []string{"received terminated: shutting the tree down", "summary", "child processes left: 0"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if strings.Contains(out.String(), "(cgroups contain them)") && !strings.Contains(out.String(), "daemons forked: 1, alive: 0") {
		t.Errorf("the plain worker's daemon outlived it in a cgroup")
	}
	for pid := range pids {
		if actortest.Alive(pid) {
			t.Errorf("worker pid %d still alive after the tree exited", pid)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}
