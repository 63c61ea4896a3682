// Command cluster runs procsup across nodes on this machine: it is the first node itself
// and starts the others as node processes (its own binary), places workers from the
// first node, then SIGKILLs (or, with -pause, SIGSTOPs for -pause-for) the node that holds
// the most workers, and watches the replacements. It prints every event as one line and
// ends with one line:
//
//	RESULT nodes=3 workers=6 lost=L replaced=R duplicates=D orphans=O replace_s=S
//
// lost: workers on the node that was killed or paused; replaced: of those, running again
// on another node at the end; duplicates: of those, the old worker process still alive at
// the end beside its replacement; orphans: old worker processes still alive 1 s after the
// node died (with -pause: 1 s after it ran again); replace_s: the slowest loss to
// running again, in seconds.
//
//	go run ./examples/cluster
//	go run ./examples/cluster -pause
//
// The workers re-execute this binary too, so nothing needs building beforehand.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/examples/workload"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/node"
)

// A node process is this binary with envNode set to its name and envJoin to the first
// node's membership address.
const (
	envNode = "PROCSUP_CLUSTER_NODE"
	envJoin = "PROCSUP_CLUSTER_JOIN"
	envLog  = "PROCSUP_CLUSTER_LOG"
)

// logOff is above every level slog logs at.
const logOff = slog.LevelError + 100

// logLevel parses a -log value.
func logLevel(s string) (slog.Level, error) {
	if s == "off" || s == "" {
		return logOff, nil
	}
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func main() {
	if os.Getenv(childproc.EnvEntry) == "worker" {
		childproc.Main(workload.Handler(workload.Options{Mode: workload.Healthy}))
	}
	if name := os.Getenv(envNode); name != "" {
		os.Exit(nodeProcess(name, os.Getenv(envJoin), os.Stdout))
	}
	os.Exit(run(os.Args[1:], os.Stdout))
}

// options are the command's flags.
type options struct {
	nodes, workers   int
	duration, failAt time.Duration
	pause            bool
	pauseFor         time.Duration
	logLevel         slog.Level
}

func parse(args []string) (options, error) {
	var o options
	var err error
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.IntVar(&o.nodes, "nodes", 3, "nodes in all, this one included (at least 2)")
	fs.IntVar(&o.workers, "workers", 6, "workers to place from the first node")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long to run in all")
	fs.DurationVar(&o.failAt, "fail-after", 5*time.Second, "when to kill (or pause) the node holding the most workers")
	fs.BoolVar(&o.pause, "pause", false, "SIGSTOP the node instead of SIGKILL, and SIGCONT it after -pause-for")
	fs.DurationVar(&o.pauseFor, "pause-for", 8*time.Second, "how long -pause stops the node")
	level := fs.String("log", "off", "the nodes' logs on stderr: debug, info, warn, error or off")
	if err = fs.Parse(args); err != nil {
		return o, err
	}
	if o.logLevel, err = logLevel(*level); err != nil {
		return o, err
	}
	if o.nodes < 2 || o.workers < 1 || o.failAt <= 0 || o.duration <= o.failAt {
		return o, errors.New("need -nodes >= 2, -workers >= 1 and 0 < -fail-after < -duration")
	}
	return o, nil
}

// spec is the worker every node offers, as "worker": this binary's healthy workload.
func spec(logger *slog.Logger) (actors.Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return actors.Config{}, err
	}
	cfg := actors.NewConfig(&launch.Command{Path: exe, Env: append(os.Environ(), childproc.EnvEntry+"=worker")})
	cfg.Logger = logger
	return cfg, nil
}

func run(args []string, stdout io.Writer) int {
	o, err := parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 2
	}
	out := &printer{w: stdout}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	os.Setenv(envLog, o.logLevel.String())
	cfg, err := spec(logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The system first, with the subscription, so that no event of the node's start is
	// missed.
	sys := newSystem(logger)
	w := newWatch("node-1")
	sub := sys.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(messages.Event); ok {
			out.line("node-1 %v", e)
			w.event(e)
		}
	})
	first, err := node.Start(ctx, node.Config{Name: "node-1", Specs: map[string]actors.Config{"worker": cfg}, Logger: logger, System: sys})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	defer sys.EventStream.Unsubscribe(sub)

	procs := map[string]*nodeProc{}
	defer func() {
		for _, p := range procs {
			p.end()
		}
	}()
	for i := 2; i <= o.nodes; i++ {
		p, err := startNode(fmt.Sprintf("node-%d", i), first.MemberAddr(), out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			return 1
		}
		procs[p.name] = p
	}
	if err := waitMembers(ctx, first, o.nodes); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}

	started := time.Now()
	var specs []actors.Spec
	for i := 1; i <= o.workers; i++ {
		props, err := first.NewProcess(node.ProcessConfig{Spec: "worker"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			return 1
		}
		specs = append(specs, actors.Spec{Name: fmt.Sprintf("w%d", i), Props: props})
	}
	tree := sys.Root.Spawn(actors.NewTree(actors.NewStrategy(actors.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}), specs...))
	var proxies []*actor.PID
	for _, s := range specs {
		proxies = append(proxies, actors.ChildPID(tree, s.Name))
	}

	r := result{nodes: o.nodes, workers: o.workers}
	if !sleep(ctx, time.Until(started.Add(o.failAt))) {
		return shutdown(first, tree, procs, out, r)
	}
	victim, lost := mostLoaded(ctx, sys, proxies, procs)
	r.lost = len(lost)
	failedAt := time.Now()
	if o.pause {
		out.line("SIGSTOP %s, holding %d workers", victim.name, len(lost))
		victim.cmd.Process.Signal(syscall.SIGSTOP)
		if !sleep(ctx, o.pauseFor) {
			victim.cmd.Process.Signal(syscall.SIGCONT)
			return shutdown(first, tree, procs, out, r)
		}
		out.line("SIGCONT %s", victim.name)
		victim.cmd.Process.Signal(syscall.SIGCONT)
	} else {
		out.line("SIGKILL %s, holding %d workers", victim.name, len(lost))
		victim.kill()
	}
	sleep(ctx, time.Second)
	for _, l := range lost {
		if alive(l.osPid) {
			r.orphans++
		}
	}
	sleep(ctx, time.Until(started.Add(o.duration)))

	for _, l := range lost {
		st, err := actors.Status(context.Background(), sys, l.proxy)
		if err == nil && st.State == messages.Running && st.Node != victim.name && st.OSPid != l.osPid {
			r.replaced++
			if alive(l.osPid) {
				r.duplicates++
			}
		}
		if at, ok := w.runningAfter(l.proxy, l.osPid, failedAt); ok {
			r.replaceS = max(r.replaceS, at.Sub(failedAt).Seconds())
		}
	}
	return shutdown(first, tree, procs, out, r)
}

// lostWorker is a worker of the node that was killed or paused.
type lostWorker struct {
	proxy *actor.PID
	osPid int
}

// mostLoaded asks every proxy where its worker runs and returns the node process
// holding the most, with those workers.
func mostLoaded(ctx context.Context, sys *actor.ActorSystem, proxies []*actor.PID, procs map[string]*nodeProc) (*nodeProc, []lostWorker) {
	by := map[string][]lostWorker{}
	for _, p := range proxies {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := actors.Status(c, sys, p)
		cancel()
		if err == nil && st.Node != "" && st.State != messages.Dead { // placed there, running or starting
			by[st.Node] = append(by[st.Node], lostWorker{proxy: p, osPid: st.OSPid})
		}
	}
	var names []string
	for n := range procs {
		names = append(names, n)
	}
	sort.Strings(names)
	victim := procs[names[0]]
	for _, n := range names {
		if len(by[n]) > len(by[victim.name]) {
			victim = procs[n]
		}
	}
	return victim, by[victim.name]
}

// result is the RESULT line.
type result struct {
	nodes, workers, lost, replaced, duplicates, orphans int
	replaceS                                            float64
}

// shutdown stops the tree (every worker closes), the node processes and the first node,
// and prints the result.
func shutdown(first *node.Node, tree *actor.PID, procs map[string]*nodeProc, out *printer, r result) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := actors.StopAndWait(ctx, first.System(), tree); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: stopping the workers:", err)
	}
	for _, p := range procs {
		p.end()
	}
	if err := first.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: closing the node:", err)
	}
	out.line("RESULT nodes=%d workers=%d lost=%d replaced=%d duplicates=%d orphans=%d replace_s=%.2f",
		r.nodes, r.workers, r.lost, r.replaced, r.duplicates, r.orphans, r.replaceS)
	return 0
}

// watch remembers when each proxy's worker started running, and on which OS pid.
type watch struct {
	mu      sync.Mutex
	self    string
	running map[string][]runningAt
}

type runningAt struct {
	osPid int
	at    time.Time
}

func newWatch(self string) *watch { return &watch{self: self, running: map[string][]runningAt{}} }

func (w *watch) event(e messages.Event) {
	if sc, ok := e.(*messages.StateChanged); ok && sc.To == messages.Running {
		w.mu.Lock()
		w.running[sc.PID.Id] = append(w.running[sc.PID.Id], runningAt{osPid: sc.OSPid, at: time.Now()})
		w.mu.Unlock()
	}
}

// runningAfter is when the proxy's worker ran again, on another OS pid than old, after t.
func (w *watch) runningAfter(proxy *actor.PID, old int, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.running[proxy.Id] {
		if r.osPid != old && r.at.After(t) {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// printer writes whole lines from several goroutines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) line(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", a...)
}

// waitMembers waits until the first node sees n live members.
func waitMembers(ctx context.Context, n *node.Node, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(n.Members()) != want {
		if !sleep(ctx, 20*time.Millisecond) {
			return fmt.Errorf("%d of %d nodes joined: %w", len(n.Members()), want, context.Cause(ctx))
		}
	}
	return nil
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// alive reports whether the process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// newSystem is an actor system that logs to logger.
func newSystem(logger *slog.Logger) *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
}

// nodeProc is a node process.
type nodeProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	once  sync.Once
	done  chan struct{}
}

// startNode starts this binary as the node process name, joining join; its lines are
// printed with out.
func startNode(name, join string, out *printer) (*nodeProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envNode+"="+name, envJoin+"="+join)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &nodeProc{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "NODE ") {
		p.kill()
		return nil, fmt.Errorf("node process %s did not start: %q", name, sc.Text())
	}
	go func() {
		defer close(p.done)
		for sc.Scan() {
			out.line("%s", sc.Text())
		}
	}()
	return p, nil
}

// end closes the node process (SIGTERM: it closes its node) and reaps it.
func (p *nodeProc) end() {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(30*time.Second, func() { p.cmd.Process.Kill() })
		<-p.done
		p.cmd.Wait()
		t.Stop()
		p.stdin.Close()
	})
}

// kill SIGKILLs the node process and reaps it.
func (p *nodeProc) kill() {
	p.once.Do(func() {
		p.cmd.Process.Kill()
		p.stdin.Close()
		p.cmd.Wait()
	})
}

// nodeProcess runs a node process: a node offering "worker" that joins join, printing
// "NODE <name> <remote> <membership>" and then every event of its node as a line, until
// SIGTERM (or its stdin closes: the first node is gone).
func nodeProcess(name, join string, stdout io.Writer) int {
	level, _ := logLevel(os.Getenv(envLog))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := spec(logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	out := &printer{w: stdout}
	// Events are printed from the start, after the NODE line the first node waits for.
	var mu sync.Mutex
	var early []string
	started := false
	sys := newSystem(logger)
	sys.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(messages.Event); ok {
			mu.Lock()
			defer mu.Unlock()
			if !started {
				early = append(early, fmt.Sprintf("%s %v", name, e))
				return
			}
			out.line("%s %v", name, e)
		}
	})
	n, err := node.Start(context.Background(), node.Config{Name: name, Join: []string{join},
		Specs: map[string]actors.Config{"worker": cfg}, Logger: logger, System: sys})
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	mu.Lock()
	out.line("NODE %s %s %s", name, n.Address(), n.MemberAddr())
	for _, l := range early {
		out.line("%s", l)
	}
	started = true
	mu.Unlock()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-term:
	case <-eof:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, name+": closing:", err)
		return 1
	}
	return 0
}
