// Command tree is procsup's main example: a supervision tree of worker processes, one
// per failure mode plus healthy ones, printing every event as one line and a summary at
// the end. It re-executes itself as the worker, so it needs nothing built beforehand:
//
//	go run ./examples/tree -duration 20s -workers 2
//
// One worker, "daemon", is a plain shell script (no procsup protocol) that forks a
// daemon out of its process group and session. Where this machine has a writable cgroup
// v2 (run as root, or in a delegated subtree), every worker runs in a cgroup of its own
// (-cgroup auto, the default, makes a directory in the cgroup v2 mount and removes it at
// the end; -cgroup none turns it off; -cgroup DIR uses DIR), and the summary shows that
// the daemon did not outlive its script.
//
// SIGINT or SIGTERM shuts the whole tree down gracefully, exit status 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/examples/workload"
	"github.com/procsup/procsup/messages"
)

func main() {
	if os.Getenv(childproc.EnvEntry) == "worker" {
		o, err := workload.Flags(os.Args[1:])
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(2)
		}
		childproc.Main(workload.Handler(o))
	}
	os.Exit(run(os.Args[1:], os.Stdout))
}

// worker is one child of the tree: a name, the worker's flags and config changes.
type worker struct {
	name string
	args []string
	tune func(*actors.Config)
}

// daemonScript is the plain worker: it forks a daemon (its own session, reparented to
// init) that a process group cannot hold, and says its pid; it stops on SIGTERM.
const daemonScript = `setsid sh -c 'sleep 1000 & echo daemon forked, pid $!'; trap 'echo stopping; exit 0' TERM; while :; do sleep 0.2; done`

func workers(extra int) []worker {
	ws := []worker{
		{name: "healthy", args: []string{"-mode", "healthy"}},
		{name: "crash", args: []string{"-mode", "crash", "-after", "1s", "-exit-code", "3"}},
		{name: "hang", args: []string{"-mode", "hang", "-after", "1s"}},
		{name: "leak", args: []string{"-mode", "leak", "-leak-mb", "8"}, tune: func(c *actors.Config) {
			c.MemoryWarnMB, c.MemoryLimitMB, c.MemorySampleInterval = 60, 200, 250*time.Millisecond
		}},
		{name: "ignore-shutdown", args: []string{"-mode", "ignore-shutdown"}},
		{name: "slow-init", args: []string{"-mode", "slow-init", "-after", "3s"}},
		{name: "fail-init", args: []string{"-mode", "fail-init"}},
		{name: "log-flood", args: []string{"-mode", "log-flood", "-after", "1s"}},
	}
	ws = append(ws, worker{name: "daemon", tune: func(c *actors.Config) {
		c.Launcher = &launch.Command{Path: "/bin/sh", Args: []string{"-c", daemonScript}}
		c.Plain = &actors.PlainConfig{}
	}})
	for i := range extra {
		ws = append(ws, worker{name: fmt.Sprintf("healthy-%d", i+2), args: []string{"-mode", "healthy"}})
	}
	return ws
}

func run(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("tree", flag.ContinueOnError)
	duration := fs.Duration("duration", 20*time.Second, "how long to run before shutting down")
	extra := fs.Int("workers", 0, "extra healthy workers")
	cgroupDir := fs.String("cgroup", "auto", `a cgroup v2 directory for the workers' cgroups: "auto" (one made in the cgroup v2 mount, if writable), "none", or a path`)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	childproc.Register("worker", workload.Handler(workload.Options{Mode: workload.Healthy}))
	p := newPrinter(out)
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	defer system.Shutdown()
	system.EventStream.Subscribe(p.event)
	cg, cleanup, err := openCgroups(*cgroupDir)
	if err != nil {
		fmt.Fprintln(out, "error:", err)
		return 1
	}
	defer cleanup()
	if cg != nil {
		p.line("-", "every worker in a cgroup of its own, in %s", cg.Dir())
	} else {
		p.line("-", "no cgroups (%s): the process group is the unit", *cgroupDir)
	}

	var specs []actors.Spec
	for _, w := range workers(*extra) {
		cmd, err := launch.SelfCommand("worker", w.args...)
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			return 1
		}
		cmd.Stderr = io.Discard
		cfg := actors.NewConfig(cmd)
		cfg.InitializeTimeout = 2 * time.Second
		cfg.CloseTimeout = 2 * time.Second
		cfg.PingInterval, cfg.PingTimeout = 500*time.Millisecond, 2*time.Second
		cfg.Logger = slog.New(&childLogs{p: p, name: w.name})
		cfg.Cgroups = cg
		if w.tune != nil {
			w.tune(&cfg)
		}
		props, err := actors.NewProcess(cfg)
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			return 1
		}
		specs = append(specs, actors.Spec{Name: w.name, Props: props})
		p.names = append(p.names, w.name)
	}
	strategy := actors.NewStrategy(actors.Backoff{Initial: 250 * time.Millisecond, Max: 4 * time.Second,
		Multiplier: 2, Jitter: 0.2, ResetAfter: 10 * time.Second, MaxRestarts: 4, Window: 30 * time.Second})
	tree := system.Root.Spawn(actors.NewTree(strategy, specs...))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		p.line("-", "received %v: shutting the tree down", s)
	case <-time.After(*duration):
		p.line("-", "%v are up: shutting the tree down", *duration)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := actors.StopAndWait(ctx, system, tree); err != nil {
		fmt.Fprintln(out, "error:", err)
		return 1
	}
	p.summary(cg)
	return 0
}

// openCgroups opens the cgroups the workers run in: none for "none"; for "auto", a
// directory of this run in the cgroup v2 mount, if it can be made (removed by cleanup).
func openCgroups(dir string) (cg *launch.Cgroups, cleanup func(), err error) {
	cleanup = func() {}
	switch dir {
	case "none":
		return nil, cleanup, nil
	case "auto":
		mount, err := launch.CgroupMount()
		if err != nil {
			return nil, cleanup, nil
		}
		dir = filepath.Join(mount, fmt.Sprintf("procsup-tree-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, cleanup, nil // not writable here: run without
		}
		cleanup = func() { syscall.Rmdir(dir) }
	}
	remove := cleanup
	cg, err = launch.OpenCgroups(dir, nil)
	if err != nil {
		remove()
		return nil, func() {}, err
	}
	return cg, func() { cg.Close(); remove() }, nil
}

// printer turns events into lines and keeps the tally for the summary.
type printer struct {
	mu      sync.Mutex
	out     io.Writer
	start   time.Time
	names   []string
	stats   map[string]*tally
	daemons []int // the pids the daemon worker said it forked
}

type tally struct {
	restarts int
	exits    int
	last     string
	reason   string
}

func newPrinter(out io.Writer) *printer {
	return &printer{out: out, start: time.Now(), stats: map[string]*tally{}}
}

func (p *printer) line(who, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "%6.2fs %-16s %s\n", time.Since(p.start).Seconds(), who, fmt.Sprintf(format, args...))
}

func (p *printer) tally(name string) *tally {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.stats[name]
	if t == nil {
		t = &tally{}
		p.stats[name] = t
	}
	return t
}

func name(pid *actor.PID) string {
	id := pid.GetId()
	return id[strings.LastIndexByte(id, '/')+1:]
}

func (p *printer) event(ev any) {
	switch e := ev.(type) {
	case *messages.StateChanged:
		if e.From != e.To {
			p.line(name(e.PID), "state %s -> %s (pid %d)", e.From, e.To, e.OSPid)
		}
	case *messages.Exited:
		how := fmt.Sprintf("exit code %d", e.ExitCode)
		if e.Signal != 0 {
			how = "signal " + e.Signal.String()
		}
		killed := ""
		if e.Killed {
			killed = ", killed"
		}
		detail := ""
		if e.Err != nil {
			detail = ": " + e.Err.Error()
		}
		p.line(name(e.PID), "exited (pid %d): %s, %s%s, up %v%s", e.OSPid, e.Reason, how, killed, e.Uptime.Round(time.Millisecond), detail)
		t := p.tally(name(e.PID))
		p.mu.Lock()
		t.exits++
		t.last, t.reason = how, e.Reason.String()
		p.mu.Unlock()
	case *messages.Restarting:
		p.line(name(e.PID), "restart #%d in %v (backoff)", e.Attempt, e.Delay.Round(time.Millisecond))
		t := p.tally(name(e.PID))
		p.mu.Lock()
		t.restarts++
		p.mu.Unlock()
	case *messages.RestartLimit:
		p.line(name(e.PID), "restart limit: %d failures within %v, stopped", e.Failures, e.Window)
	case *messages.HighPing:
		p.line(name(e.PID), "high ping: round trip %v", e.RTT.Round(time.Millisecond))
	case *messages.MemoryWarning:
		p.line(name(e.PID), "memory warning: %.0f MB %s (warn at %d MB)", float64(e.Bytes)/(1<<20), e.Figure, e.Warn>>20)
	case *messages.MemoryLimitExceeded:
		p.line(name(e.PID), "memory limit exceeded: %.0f MB %s (limit %d MB), killing", float64(e.Bytes)/(1<<20), e.Figure, e.Limit>>20)
	}
}

func (p *printer) summary(cg *launch.Cgroups) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out, "\nsummary")
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "worker\trestarts\texits\tlast exit\treason")
	names := append([]string(nil), p.names...)
	sort.Strings(names)
	for _, n := range names {
		t := p.stats[n]
		if t == nil {
			t = &tally{last: "-", reason: "-"}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", n, t.restarts, t.exits, t.last, t.reason)
	}
	tw.Flush()
	fmt.Fprintf(p.out, "child processes left: %d\n", countChildren())
	alive := 0
	for _, pid := range p.daemons {
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			alive++
		}
	}
	if cg != nil {
		fmt.Fprintf(p.out, "daemons forked: %d, alive: %d (cgroups contain them)\n", len(p.daemons), alive)
	} else {
		fmt.Fprintf(p.out, "daemons forked: %d, alive: %d (without cgroups a daemon escapes its process group)\n", len(p.daemons), alive)
	}
}

// zombie reports whether pid has exited and awaits its parent.
func zombie(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

// countChildren counts this program's child processes still alive, but for the cgroup
// guardian (it lives as long as the program).
func countChildren() int {
	guards, _ := launch.Guardians()
	ents, _ := os.ReadDir("/proc")
	me := fmt.Sprint(os.Getpid())
	n := 0
	for _, e := range ents {
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(st)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == me && f[0] != "Z" && !slices.Contains(guards, atoi(e.Name())) {
			n++
		}
	}
	return n
}

// childLogs prints the child's own log records (INFO and above) as event lines.
type childLogs struct {
	p     *printer
	name  string
	attrs []slog.Attr
}

func (h *childLogs) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *childLogs) Handle(_ context.Context, r slog.Record) error {
	child := false
	var kv []string
	for _, a := range h.attrs {
		if a.Key == "source" && a.Value.String() == "child" {
			child = true
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "source":
			child = child || a.Value.String() == "child"
		case "stream": // a plain program's output line
			child = true
			var pid int
			if _, err := fmt.Sscanf(r.Message, "daemon forked, pid %d", &pid); err == nil {
				h.p.mu.Lock()
				h.p.daemons = append(h.p.daemons, pid)
				h.p.mu.Unlock()
			}
		case "actor", "pid", "child_source":
		default:
			kv = append(kv, a.String())
		}
		return true
	})
	if child {
		h.p.line(h.name, "log %s: %s %s", r.Level, r.Message, strings.Join(kv, " "))
	}
	return nil
}

func (h *childLogs) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *childLogs) WithGroup(string) slog.Handler { return h }

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
