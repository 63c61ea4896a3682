package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/examples/workload"
)

// The test binary is the example (CLUSTER_MAIN), its node processes and its workers.
func TestMain(m *testing.M) {
	if os.Getenv(childproc.EnvEntry) == "worker" {
		childproc.Main(workload.Handler(workload.Options{Mode: workload.Healthy}))
	}
	if name := os.Getenv(envNode); name != "" {
		os.Exit(nodeProcess(name, os.Getenv(envJoin), os.Stdout))
	}
	if args := os.Getenv("CLUSTER_MAIN"); args != "" {
		os.Exit(run(strings.Fields(args), os.Stdout))
	}
	childproctest.Main(m)
}

var resultLine = regexp.MustCompile(`^RESULT nodes=(\d+) workers=(\d+) lost=(\d+) replaced=(\d+) duplicates=(\d+) orphans=(\d+) replace_s=([0-9.]+)$`)

// runExample runs the example with args and returns its RESULT fields, after checking
// that it exited 0, printed exactly one RESULT line, and left nothing running.
func runExample(t *testing.T, args string) (result []string, output string) {
	t.Helper()
	actortest.CheckLeaks(t)
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "CLUSTER_MAIN="+args)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A hang is a failure with the example's goroutines on stderr, not a test timeout.
	watchdog := time.AfterFunc(3*time.Minute, func() { cmd.Process.Signal(syscall.SIGQUIT) })
	defer watchdog.Stop()
	var results [][]string
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if m := resultLine.FindStringSubmatch(sc.Text()); m != nil {
			results = append(results, m)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the example exited with %v; its output:\n%s", err, strings.Join(lines, "\n"))
	}
	if len(results) != 1 {
		t.Fatalf("%d RESULT lines; the output:\n%s", len(results), strings.Join(lines, "\n"))
	}
	return results[0], strings.Join(lines, "\n")
}

// The node holding the most workers is SIGKILLed: its workers die with it and run again
// on the others, once each.
func TestClusterKill(t *testing.T) {
	r, out := runExample(t, "-nodes 3 -workers 6 -fail-after 4s -duration 12s")
	if r[1] != "3" || r[2] != "6" || r[3] == "0" || r[4] != r[3] || r[5] != "0" || r[6] != "0" {
		t.Fatalf("%s: want lost > 0, replaced = lost, no duplicates, no orphans; the output:\n%s", r[0], out)
	}
}

// With -pause the node is SIGSTOPped past the detection time, then resumed: its workers
// are replaced elsewhere, and it kills the stale ones when it runs again.
func TestClusterPause(t *testing.T) {
	r, out := runExample(t, "-nodes 3 -workers 6 -fail-after 4s -pause -pause-for 8s -duration 16s")
	if r[3] == "0" || r[4] != r[3] || r[5] != "0" || r[6] != "0" {
		t.Fatalf("%s: want lost > 0, replaced = lost, no duplicates, no orphans; the output:\n%s", r[0], out)
	}
}
