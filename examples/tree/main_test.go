package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
	cmd.Env = append(os.Environ(), "TREE_MAIN=-duration 2m -workers 1 -http 127.0.0.1:0")
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
	if _, _, err := pythonWorker(); err == nil {
		want["python worker"] = regexp.MustCompile(`python +log INFO: worker ready`)
	} else {
		t.Logf("no Python worker in the tree: %v", err)
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
	served := map[string]int{}
	var asking sync.WaitGroup
	addrRE := regexp.MustCompile(`status page at (http://\S+/)`)
	for line := range lines {
		out.WriteString(line + "\n")
		if m := addrRE.FindStringSubmatch(line); m != nil {
			asking.Add(1)
			go func() { // the status page while the tree runs
				defer asking.Done()
				for _, path := range []string{"healthz", "status", "metrics", "events", ""} {
					res, err := http.Get(m[1] + path)
					if err == nil {
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						served[path] = res.StatusCode
					}
				}
			}()
		}
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
	asking.Wait()
	for _, path := range []string{"status", "metrics", "events", ""} {
		if served[path] != http.StatusOK {
			t.Errorf("GET /%s while the tree ran: %d", path, served[path])
		}
	}
	if c := served["healthz"]; c != http.StatusOK && c != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz: %d", c)
	}
	if err != nil {
		t.Fatalf("tree exited with %v; output:\n%s", err, out.String())
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("no %s event printed", k)
		}
	}
	for _, s := range []string{"received terminated: shutting the tree down", "summary", "child processes left: 0",
		"What to look for", "given up on"} {
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

// -h describes the program and its workers, and exits 0.
func TestHelp(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"-h"}, &out); code != 0 {
		t.Fatalf("-h exits %d", code)
	}
	for _, w := range workers(0) {
		if !strings.Contains(out.String(), w.name) || !strings.Contains(out.String(), w.shows) {
			t.Errorf("-h does not describe %s:\n%s", w.name, out.String())
		}
	}
	if !strings.Contains(out.String(), "-http") {
		t.Errorf("-h lists no flags:\n%s", out.String())
	}
}
