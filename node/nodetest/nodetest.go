// Package nodetest starts procsup nodes as separate processes for tests, as
// net/http/httptest starts servers: the test binary re-executes itself as each node, so
// a test can SIGKILL, SIGSTOP and SIGCONT a node and watch what its own node (the one in
// the test process) makes of it.
//
// One node per process: protoactor's remote sets gRPC's global logger when it starts, a
// data race under -race between two nodes of one process. A test keeps one node of its
// own (node.Start, once for the test binary) and starts the others with StartProcess.
//
//	func TestMain(m *testing.M) {
//		nodetest.RunIfNode(func(cfg *node.Config) { cfg.Specs = mySpecs() })
//		childproctest.Main(m) // or m.Run()
//	}
//
//	func TestFailover(t *testing.T) {
//		b := nodetest.StartProcess(t, "b", myNode.MemberAddr())
//		...
//		b.Kill()
//	}
package nodetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/node"
)

// The environment of a node process.
const (
	// EnvName is the node's name: set, the binary runs as a node process (RunIfNode).
	EnvName = "PROCSUP_NODETEST_NAME"
	// EnvJoin is the membership address it joins (empty: a new cluster).
	EnvJoin = "PROCSUP_NODETEST_JOIN"
	// EnvKey is its membership key (empty: none).
	EnvKey = "PROCSUP_NODETEST_KEY"
	// EnvHost is the address it listens on (empty: node.DefaultHost).
	EnvHost = "PROCSUP_NODETEST_HOST"
	// EnvViews, when set, makes it print "VIEW <name>,<name>..." (its live members, itself
	// included, sorted) at the start and whenever a member joins or is lost.
	EnvViews = "PROCSUP_NODETEST_VIEWS"
	// EnvPorts is its remote and membership ports, "REMOTE,MEMBER" (empty: any free ones),
	// for a node started again on the same address.
	EnvPorts = "PROCSUP_NODETEST_PORTS"
)

// Timeout bounds a node process's start and its close.
var Timeout = 30 * time.Second

// RunIfNode runs this binary as a node process when EnvName is set, and exits; otherwise
// it returns at once. Call it first in TestMain. configure sets the node's config (its
// Specs, mostly) after the name, the join address and the key from the environment.
// Each of then, when given, runs on a goroutine of its own once the node started, until
// ctx ends as the node process is asked to stop; say prints a line on its stdout.
//
// A node process prints one line, "NODE <name> <remote address> <membership address>",
// and runs until SIGTERM or until its stdin closes (the test ended). On SIGTERM it closes
// the node and checks that it left no goroutine, descriptor or child process behind: it
// exits 0 when it left none, 3 when it did (its goroutines on stderr), 2 when the node
// failed to start or close ("ERROR ..." on stdout).
func RunIfNode(configure func(*node.Config), then ...func(ctx context.Context, n *node.Node, say func(string))) {
	name := os.Getenv(EnvName)
	if name == "" {
		return
	}
	os.Unsetenv(EnvName) // the workers it starts may be this binary too
	os.Exit(runNode(name, configure, then))
}

// stdout is a node process's stdout, a line at a time.
var stdout sync.Mutex

func say(line string) {
	stdout.Lock()
	defer stdout.Unlock()
	fmt.Println(line)
}

func runNode(name string, configure func(*node.Config), then []func(context.Context, *node.Node, func(string))) int {
	cfg := node.Config{Name: name, Host: os.Getenv(EnvHost)}
	if j := os.Getenv(EnvJoin); j != "" {
		cfg.Join = []string{j}
	}
	if k := os.Getenv(EnvKey); k != "" {
		cfg.MembershipKey = []byte(k)
	}
	if p := os.Getenv(EnvPorts); p != "" {
		remote, member, _ := strings.Cut(p, ",")
		cfg.RemotePort, _ = strconv.Atoi(remote)
		cfg.MemberPort, _ = strconv.Atoi(member)
	}
	if configure != nil {
		configure(&cfg)
	}
	goroutines, fds := actortest.CountGoroutines(), actortest.CountFDs()
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	say(strings.Join([]string{"NODE", n.Name(), n.Address(), n.MemberAddr()}, " "))
	if os.Getenv(EnvViews) != "" {
		view := func() {
			var names []string
			for _, m := range n.Members() {
				names = append(names, m.Name)
			}
			sort.Strings(names)
			say("VIEW " + strings.Join(names, ","))
		}
		sub := n.System().EventStream.Subscribe(func(ev any) {
			switch ev.(type) {
			case *node.MemberJoined, *node.MemberLost:
				view()
			}
		})
		defer n.System().EventStream.Unsubscribe(sub)
		view()
	}
	running, stopRunning := context.WithCancel(context.Background())
	var ran sync.WaitGroup
	for _, f := range then {
		ran.Go(func() { f(running, n, say) })
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-term:
	case <-eof:
		stopRunning()
		return 0
	}
	stopRunning()
	ran.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		fmt.Println("ERROR closing:", err)
		return 2
	}
	signal.Stop(term)
	// the stdin reader and os/signal's loop are the goroutines allowed to remain
	deadline := time.Now().Add(actortest.LeakTimeout)
	for actortest.CountGoroutines() > goroutines+2 || actortest.CountFDs() > fds || len(actortest.ChildPIDs()) > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "LEAKED goroutines %d -> %d, descriptors %d -> %d, children %v\n%s\n", goroutines,
				actortest.CountGoroutines(), fds, actortest.CountFDs(), actortest.ChildPIDs(), buf[:runtime.Stack(buf, true)])
			return 3
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

// Process is a node process a test started.
type Process struct {
	// Name, Remote and MemberAddr are the node's name, remote address (its agent is
	// actor.NewPID(Remote, node.AgentName)) and membership address (to join).
	Name, Remote, MemberAddr string
	// Cmd is the process; Cmd.Process.Pid its pid.
	Cmd *exec.Cmd

	tb    testing.TB
	stdin *os.File
	once  sync.Once

	mu    sync.Mutex
	view  []string    // the last VIEW line's names
	lines chan string // every line after NODE, but VIEW lines
}

// StartProcess starts a node process named name that joins join (empty: a new cluster),
// with env added to its environment (EnvKey, say), and waits for its NODE line. When the
// test ends it is stopped with SIGTERM and must exit 0 (closed, nothing leaked), unless
// the test killed it. It dies with the test (parent-death signal) whatever happens.
func StartProcess(tb testing.TB, name, join string, env ...string) *Process {
	tb.Helper()
	return start(tb, nil, name, join, env)
}

// StartProcessIn is StartProcess in the network namespace netns (ip netns exec): the
// node listens on the address EnvHost gives it there.
func StartProcessIn(tb testing.TB, netns, name, join string, env ...string) *Process {
	tb.Helper()
	return start(tb, []string{"ip", "netns", "exec", netns}, name, join, env)
}

func start(tb testing.TB, prefix []string, name, join string, env []string) *Process {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	argv := append(append([]string(nil), prefix...), os.Args[0])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append(env, EnvName+"="+name, EnvJoin+"="+join)...)
	cmd.Stdin = r
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		w.Close()
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		tb.Fatal(err)
	}
	p := &Process{Name: name, Cmd: cmd, tb: tb, stdin: w, lines: make(chan string, 1<<16)}
	tb.Cleanup(p.Stop)
	// one that does not start in time fails the test with its goroutines on stderr
	watchdog := time.AfterFunc(Timeout, func() { cmd.Process.Signal(syscall.SIGQUIT) })
	lines := bufio.NewReader(out)
	line, err := lines.ReadString('\n')
	watchdog.Stop()
	f := strings.Fields(line)
	if err != nil || len(f) != 4 || f[0] != "NODE" {
		tb.Fatalf("node process %s: %q, %v", name, line, err)
	}
	p.Remote, p.MemberAddr = f[2], f[3]
	go p.read(lines)
	return p
}

// read keeps the last VIEW and passes the other lines on, until the process's stdout ends.
func (p *Process) read(r *bufio.Reader) {
	defer close(p.lines)
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "VIEW "); ok {
			p.mu.Lock()
			p.view = strings.Split(v, ",")
			p.mu.Unlock()
		} else if line != "" {
			select {
			case p.lines <- line:
			default: // nobody reads them: dropped
			}
		}
		if err != nil {
			return
		}
	}
}

// View returns the node's live members as it last printed them (EnvViews), itself
// included, sorted.
func (p *Process) View() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.view...)
}

// Lines returns the lines the node process prints after its NODE line (VIEW lines
// excepted); it is closed when its stdout ends.
func (p *Process) Lines() <-chan string { return p.lines }

// Kill SIGKILLs the node process and reaps it.
func (p *Process) Kill() {
	p.once.Do(func() {
		p.Cmd.Process.Kill()
		p.Cmd.Wait()
		p.stdin.Close()
	})
}

// Pause stops the node process (SIGSTOP); its workers, separate processes, go on.
func (p *Process) Pause() { p.Cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused node process (SIGCONT).
func (p *Process) Resume() { p.Cmd.Process.Signal(syscall.SIGCONT) }

// Stop closes the node process (SIGCONT, then SIGTERM) and fails the test unless it exits
// 0 within Timeout. It runs when the test ends; calling it earlier is fine.
func (p *Process) Stop() {
	p.once.Do(func() {
		defer p.stdin.Close()
		p.Resume()
		if p.Cmd.Process.Signal(syscall.SIGTERM) != nil {
			p.Cmd.Wait()
			return
		}
		done := make(chan error, 1)
		go func() { done <- p.Cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				p.tb.Errorf("node process %s ended with %v (2: it failed to close, 3: it leaked)", p.Name, err)
			}
		case <-time.After(Timeout):
			p.Cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, on stderr
			time.Sleep(time.Second)
			p.Cmd.Process.Kill()
			<-done
			p.tb.Errorf("node process %s did not close within %v", p.Name, Timeout)
		}
	})
}
