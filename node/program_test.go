package node_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages/nodepb"
	"github.com/procsup/procsup/node"
)

// A node process is this test binary started with envNodeProgram set to the node's name:
// it starts a node that offers "echo", joins envJoin, prints one line
// "NODE <name> <remote> <membership>", and runs until SIGTERM or until its stdin closes
// (the test ended). On SIGTERM it closes the node and checks that the node left no
// goroutine and no descriptor behind: it exits 0 when it left none, 3 when it did.
const (
	envNodeProgram = "PROCSUP_TEST_NODE"
	envJoin        = "PROCSUP_TEST_JOIN"
	envSchema      = "PROCSUP_TEST_SCHEMA"
	envKey         = "PROCSUP_TEST_KEY"
)

func nodeProgram() {
	name := os.Getenv(envNodeProgram)
	os.Unsetenv(envNodeProgram) // its workers are this binary too
	goroutines, fds := actortest.CountGoroutines(), actortest.CountFDs()
	cfg := node.Config{Name: name, Logger: quiet(),
		Specs: map[string]actors.Config{"echo": workerSpec(nil)}}
	if j := os.Getenv(envJoin); j != "" {
		cfg.Join = []string{j}
	}
	if k := os.Getenv(envKey); k != "" {
		cfg.MembershipKey = []byte(k)
	}
	if v, _ := strconv.Atoi(os.Getenv(envSchema)); v != 0 {
		cfg = node.WithSchema(cfg, v)
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	// the floor of the benchmarks: protoactor remote's own request and response
	n.System().Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*nodepb.Reply); ok {
			c.Respond(m)
		}
	}), "bench-echo")
	fmt.Println("NODE", n.Name(), n.Address(), n.MemberAddr())
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	eof := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(eof)
	}()
	select {
	case <-term:
	case <-eof:
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		fmt.Println("ERROR closing:", err)
		os.Exit(2)
	}
	signal.Stop(term)
	deadline := time.Now().Add(actortest.LeakTimeout)
	// the stdin reader and os/signal's loop are the goroutines allowed to remain
	for actortest.CountGoroutines() > goroutines+2 || actortest.CountFDs() > fds || len(actortest.ChildPIDs()) > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "LEAKED goroutines %d -> %d, descriptors %d -> %d, children %v\n%s\n", goroutines, actortest.CountGoroutines(),
				fds, actortest.CountFDs(), actortest.ChildPIDs(), buf[:runtime.Stack(buf, true)])
			os.Exit(3)
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Exit(0)
}

// nodeProc is a node process a test started.
type nodeProc struct {
	name, remote, member string
	cmd                  *exec.Cmd
	stdin                *os.File
	once                 sync.Once
	err                  error
}

// startNodeProcess starts a node process named name that joins join. When the test ends
// it is stopped with SIGTERM (and must exit 0: closed, nothing leaked) unless the test
// killed it.
func startNodeProcess(t testing.TB, name, join string, env ...string) *nodeProc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, envNodeProgram+"="+name, envJoin+"="+join)...)
	cmd.Stdin = r
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	p := &nodeProc{name: name, cmd: cmd, stdin: w}
	t.Cleanup(func() { p.stop(t) })
	// a node process that does not start in time is a failure with its goroutines on
	// stderr, not a hung test
	watchdog := time.AfterFunc(wait, func() { cmd.Process.Signal(syscall.SIGQUIT) })
	line, err := bufio.NewReader(out).ReadString('\n')
	watchdog.Stop()
	f := strings.Fields(line)
	if err != nil || len(f) != 4 || f[0] != "NODE" {
		t.Fatalf("node process %s: %q, %v", name, line, err)
	}
	p.remote, p.member = f[2], f[3]
	return p
}

// stop ends the node process with SIGTERM and checks its exit (0: closed cleanly), or
// reaps it if the test killed it.
func (p *nodeProc) stop(t testing.TB) {
	p.once.Do(func() {
		defer p.stdin.Close()
		if p.cmd.Process.Signal(syscall.SIGTERM) != nil {
			p.err = p.cmd.Wait()
			return
		}
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case p.err = <-done:
			if p.err != nil {
				t.Errorf("node process %s ended with %v (3: it leaked)", p.name, p.err)
			}
		case <-time.After(wait):
			p.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, on stderr
			time.Sleep(time.Second)
			p.cmd.Process.Kill()
			<-done
			t.Errorf("node process %s did not close within %v", p.name, wait)
		}
	})
}

// kill SIGKILLs the node process and reaps it.
func (p *nodeProc) kill() {
	p.once.Do(func() {
		p.cmd.Process.Kill()
		p.err = p.cmd.Wait()
		p.stdin.Close()
	})
}
