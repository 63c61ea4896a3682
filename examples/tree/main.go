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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
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
	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/childproc/python"
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

// worker is one child of the tree: a name, the worker's flags and config changes, and
// what it shows.
type worker struct {
	name  string
	args  []string
	tune  func(*actors.Config)
	shows string
}

// daemonScript is the plain worker: it forks a daemon (its own session, reparented to
// init) that a process group cannot hold, and says its pid; it stops on SIGTERM.
const daemonScript = `setsid sh -c 'sleep 1000 & echo daemon forked, pid $!'; trap 'echo stopping; exit 0' TERM; while :; do sleep 0.2; done`

func workers(extra int) []worker {
	ws := []worker{
		{name: "healthy", args: []string{"-mode", "healthy"}, shows: "runs, logs a heartbeat every 2 s, stops cleanly: exit code 0"},
		{name: "crash", args: []string{"-mode", "crash", "-after", "1s", "-exit-code", "3"}, shows: "exits 3 after 1 s: crashed, restarted with backoff until the restart limit gives up on it"},
		{name: "hang", args: []string{"-mode", "hang", "-after", "1s"}, shows: "stops answering pings after 1 s: killed as unresponsive after the 2 s ping timeout, restarted"},
		{name: "leak", args: []string{"-mode", "leak", "-leak-mb", "8"}, tune: func(c *actors.Config) {
			c.MemoryWarnMB, c.MemoryLimitMB, c.MemorySampleInterval = 60, 200, 250*time.Millisecond
		}, shows: "grows 8 MB a tick: memory warnings above 60 MB, killed above 200 MB, restarted"},
		{name: "ignore-shutdown", args: []string{"-mode", "ignore-shutdown"}, shows: "ignores the shutdown request: killed 2 s (CloseTimeout) into the shutdown"},
		{name: "slow-init", args: []string{"-mode", "slow-init", "-after", "3s"}, shows: "takes 3 s to initialize: killed at the 2 s initialization timeout, restarted, given up on"},
		{name: "fail-init", args: []string{"-mode", "fail-init"}, shows: "fails its initialization: the error reported, restarted, given up on"},
		{name: "log-flood", args: []string{"-mode", "log-flood", "-after", "1s"}, shows: "floods its log after 1 s: the parent re-emits 1000 records a second and counts the rest as dropped"},
	}
	ws = append(ws, worker{name: "daemon", tune: func(c *actors.Config) {
		c.Launcher = &launch.Command{Path: "/bin/sh", Args: []string{"-c", daemonScript}}
		c.Plain = &actors.PlainConfig{}
	}, shows: "a plain shell script (no procsup protocol) that forks a daemon out of its process group: with cgroups it dies with the script"})
	if py, script, err := pythonWorker(); err == nil {
		ws = append(ws, worker{name: "python", tune: func(c *actors.Config) {
			c.Launcher = &launch.Command{Path: py, Args: []string{script}}
		}, shows: "a Python worker (childproc/python): logs through logging, answers echo, upper and fail"})
	}
	for i := range extra {
		ws = append(ws, worker{name: fmt.Sprintf("healthy-%d", i+2), args: []string{"-mode", "healthy"}, shows: "as healthy"})
	}
	return ws
}

// pythonWorker finds a python3 with msgpack and examples/pyworker/worker.py, or says why
// the tree runs without a Python worker.
func pythonWorker() (py, script string, err error) {
	w := findPython()
	return w.py, w.script, w.err
}

var findPython = sync.OnceValue(func() (w struct {
	py, script string
	err        error
}) {
	if w.py, w.err = python.Interpreter(); w.err != nil {
		return w
	}
	_, here, _, _ := runtime.Caller(0)
	w.script = filepath.Join(filepath.Dir(here), "..", "pyworker", "worker.py")
	if _, err := os.Stat(w.script); err != nil {
		w.err = fmt.Errorf("the example Python worker is not at %s", w.script)
	}
	return w
})

// about is what -h prints before the flags.
const about = `tree: procsup's main example. A supervision tree of worker processes, each one
misbehaving in its own way, supervised by process actors under one restart strategy
(backoff from 250 ms, at most 4 restarts in 30 s, then the tree gives up on the worker).
Every event prints as one line; at the end (after -duration, or on SIGINT/SIGTERM) the
tree shuts down gracefully and a summary says what became of each worker. The program
re-executes itself as its workers.

The workers:
`

func run(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("tree", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, about)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, w := range workers(0) {
			fmt.Fprintf(tw, "  %s\t%s\n", w.name, w.shows)
		}
		tw.Flush()
		fmt.Fprintln(out, "\nFlags:")
		fs.PrintDefaults()
	}
	duration := fs.Duration("duration", 20*time.Second, "how long to run before shutting down")
	extra := fs.Int("workers", 0, "extra healthy workers")
	httpAddr := fs.String("http", "", "serve the status page, /healthz, /status (JSON) and /metrics (Prometheus) at this address, e.g. 127.0.0.1:8080")
	cgroupDir := fs.String("cgroup", "auto", `a cgroup v2 directory for the workers' cgroups: "auto" (one made in the cgroup v2 mount, if writable), "none", or a path`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	childproc.Register("worker", workload.Handler(workload.Options{Mode: workload.Healthy}))
	p := newPrinter(out)
	quiet := slog.New(slog.DiscardHandler)
	opts := []actor.ConfigOption{actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet })}
	var metrics http.Handler
	if *httpAddr != "" {
		provider, h, err := httpstatus.Prometheus()
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			return 1
		}
		opts, metrics = append(opts, actor.WithMetricProviders(provider)), h
	}
	system := actor.NewActorSystem(opts...)
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

	if _, _, err := pythonWorker(); err != nil {
		p.line("-", "no Python worker: %v", err)
	}
	p.banner(workers(*extra), *duration)
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
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			return 1
		}
		// PROCSUP_TOKEN, when set, lets `procsup restart|stop|respawn` act (cmd/procsup).
		status := httpstatus.New(system, tree, httpstatus.Options{Metrics: metrics, Title: "procsup: examples/tree",
			ControlToken: os.Getenv("PROCSUP_TOKEN")})
		defer status.Close()
		srv := &http.Server{Handler: status, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		p.line("-", "status page at http://%s/ (and /healthz, /status, /events, /metrics)", ln.Addr())
	}

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
	final := actors.Snapshot(ctx, system, tree) // what each worker was when the shutdown began
	if err := actors.StopAndWait(ctx, system, tree); err != nil {
		fmt.Fprintln(out, "error:", err)
		return 1
	}
	p.summary(cg, final)
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
		sweepRuns(mount)
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
	failure  string // the last end that was no request: crashed, unresponsive...
	logs     int    // child log records received
	dropped  uint64 // child log records lost (Exited.LogsDropped)
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
		if e.From != e.To && e.OSPid != 0 { // a restart's "dead -> starting" has no process yet
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
		t.dropped += e.LogsDropped
		if !e.Reason.Requested() {
			t.failure = e.Reason.String() + ", " + how
		}
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

// banner says what the run will show.
func (p *printer) banner(ws []worker, d time.Duration) {
	fmt.Fprintf(p.out, "procsup examples/tree: %d workers for %v (-h says more). What to look for:\n", len(ws), d)
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	for _, w := range ws {
		fmt.Fprintf(tw, "  %s\t%s\n", w.name, w.shows)
	}
	tw.Flush()
	fmt.Fprintln(p.out)
}

func (p *printer) summary(cg *launch.Cgroups, final *messages.Snapshot) {
	state := map[string]string{}
	for _, c := range final.Children {
		if c.Process != nil {
			state[c.Name] = c.Process.State
		}
	}
	for _, n := range final.Failed {
		state[n] = "given up on"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out, "\nsummary (state: when the shutdown began)")
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "worker\tstate\trestarts\texits\tlast failure\tlog records\tdropped")
	names := append([]string(nil), p.names...)
	sort.Strings(names)
	for _, n := range names {
		t := p.stats[n]
		if t == nil {
			t = &tally{}
		}
		failure := t.failure
		if failure == "" {
			failure = "-"
		}
		st := state[n]
		if st == "" {
			st = "stopped"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\n", n, st, t.restarts, t.exits, failure, t.logs, t.dropped)
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

// sweepRuns removes the directories of earlier runs that died before removing theirs
// (their guardians have emptied them already).
func sweepRuns(mount string) {
	ents, _ := os.ReadDir(mount)
	for _, e := range ents {
		if pid, ok := strings.CutPrefix(e.Name(), "procsup-tree-"); ok {
			if n := atoi(pid); n > 0 && syscall.Kill(n, 0) != nil {
				syscall.Rmdir(filepath.Join(mount, e.Name())) // fails, harmlessly, while anything is in it
			}
		}
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

func (h *childLogs) Enabled(context.Context, slog.Level) bool { return true }

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
	switch {
	case child:
		t := h.p.tally(h.name)
		h.p.mu.Lock()
		t.logs++
		h.p.mu.Unlock()
		if r.Level >= slog.LevelInfo {
			h.p.line(h.name, "log %s: %s %s", r.Level, r.Message, strings.Join(kv, " "))
		}
	case r.Level >= slog.LevelWarn && strings.Contains(r.Message, "log records"): // procsup's count of the records it dropped
		h.p.line(h.name, "procsup %s: %s %s", r.Level, r.Message, strings.Join(kv, " "))
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
