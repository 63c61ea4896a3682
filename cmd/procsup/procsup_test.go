package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

// fixture is a live handler over a real tree of two real children ("a" and "b", the
// smallest procsup child) and the procsup command built as users build it.
type fixture struct {
	system *actor.ActorSystem
	tree   *actor.PID
	srv    *httptest.Server
	bin    string
	log    *lockedBuffer // the handler's log: every control action
}

const token = "correct horse battery staple"

// setup checks the test for leaks and returns a quiet actor system, the config of the
// smallest procsup child (built), and the procsup command (built).
func setup(t *testing.T) (*actor.ActorSystem, actors.Config, string) {
	t.Helper()
	actortest.CheckLeaks(t)
	child := childproctest.Build(t, childproctest.Minimal)
	bin := childproctest.Build(t, "github.com/procsup/procsup/cmd/procsup")
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	t.Cleanup(system.Shutdown)
	cfg := actors.NewConfig(&launch.Command{Path: child})
	cfg.Logger = quiet
	return system, cfg, bin
}

func newFixture(t *testing.T, control string) *fixture {
	t.Helper()
	system, cfg, bin := setup(t)
	props := func() *actor.Props {
		p, err := actors.NewProcess(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	running := map[string]bool{}
	var mu sync.Mutex
	up := make(chan struct{})
	sub := system.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.StateChanged); ok && e.To == messages.Running {
			mu.Lock()
			defer mu.Unlock()
			running[e.PID.Id] = true
			if len(running) == 2 {
				close(up)
			}
		}
	})
	// The handler first, so that it keeps the tree's events from its start.
	log := &lockedBuffer{}
	status := httpstatus.New(system, actor.NewPID(system.Address(), "fleet"),
		httpstatus.Options{ControlToken: control, Logger: slog.New(slog.NewTextHandler(log, nil))})
	srv := httptest.NewServer(status)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		status.Close()
	})
	tree := spawnNamed(t, system, actors.NewTree(nil, actors.Spec{Name: "a", Props: props()}, actors.Spec{Name: "b", Props: props()}), "fleet")
	select {
	case <-up:
	case <-time.After(time.Minute):
		t.Fatal("the children did not run")
	}
	system.EventStream.Unsubscribe(sub)
	return &fixture{system: system, tree: tree, srv: srv, bin: bin, log: log}
}

// spawnNamed spawns props as name, stopped when the test ends.
func spawnNamed(t *testing.T, system *actor.ActorSystem, props *actor.Props, name string) *actor.PID {
	t.Helper()
	pid, err := system.Root.SpawnNamed(props, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := actors.StopAndWait(ctx, system, pid); err != nil {
			t.Errorf("stopping %s: %v", name, err)
		}
	})
	return pid
}

// procsup runs the command against the handler and returns its output and exit status.
func (f *fixture) procsup(t *testing.T, tok string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.bin, append([]string{"-addr", f.srv.URL, "-token", tok}, args...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("procsup %v: %v", args, err)
	}
	return string(out), 0
}

// pidOf is the pid the status table shows for the process id.
func pidOf(t *testing.T, table, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+(\S+)\s+(\S+)`).FindStringSubmatch(table)
	if m == nil {
		t.Fatalf("no row for %s in:\n%s", id, table)
	}
	if m[1] != "running" {
		t.Fatalf("%s is %s, want running:\n%s", id, m[1], table)
	}
	return m[2]
}

// The command against a live handler: the table a person expects, the events, a restart
// that changes the pid, a stop, a respawn, and actions refused without the token and
// with a wrong one, each logged.
func TestCommandAgainstALiveHandler(t *testing.T) {
	f := newFixture(t, token)

	table, code := f.procsup(t, "", "status")
	if code != 0 {
		t.Fatalf("status: exit %d:\n%s", code, table)
	}
	for _, col := range []string{"NAME", "STATE", "PID", "RESTARTS", "UPTIME", "MEMORY", "CPU", "LAST END"} {
		if !strings.Contains(table, col) {
			t.Errorf("the table has no %s column:\n%s", col, table)
		}
	}
	before := pidOf(t, table, "fleet/a")
	pidOf(t, table, "fleet/b")
	if !strings.Contains(table, "2 processes: running 2") {
		t.Errorf("no summary line:\n%s", table)
	}

	events, code := f.procsup(t, "", "events")
	if code != 0 || !regexp.MustCompile(`state_changed\s+fleet/a: initializing -> running`).MatchString(events) {
		t.Fatalf("events: exit %d:\n%s", code, events)
	}

	// Refused: no token, a wrong one. Nothing happens, and each is logged.
	out, code := f.procsup(t, "", "restart", "a")
	if code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("restart without a token: exit %d: %s", code, out)
	}
	out, code = f.procsup(t, "not the token", "restart", "a")
	if code != 1 || !strings.Contains(out, "403") || !strings.Contains(out, "wrong token") {
		t.Fatalf("restart with a wrong token: exit %d: %s", code, out)
	}
	if table, _ = f.procsup(t, "", "status"); pidOf(t, table, "fleet/a") != before {
		t.Fatalf("a refused restart changed the pid:\n%s", table)
	}

	// Follow the feed while acting: the restart's events arrive on it.
	ctx, cancel := context.WithCancel(context.Background())
	follow := exec.CommandContext(ctx, f.bin, "-addr", f.srv.URL, "events", "-f")
	pipe, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); follow.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	out, code = f.procsup(t, token, "restart", "a")
	if code != 0 || !strings.Contains(out, "restart fleet/a: closed and started again") {
		t.Fatalf("restart: exit %d: %s", code, out)
	}
	table, _ = f.procsup(t, "", "status")
	if after := pidOf(t, table, "fleet/a"); after == before || !strings.Contains(out, "(pid "+after+")") {
		t.Fatalf("restart: pid %s before, the table says %s after, the command %q", before, after, out)
	}
	for seen := map[string]bool{}; !seen["closed on request"] || !seen["-> running"]; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the followed feed ended")
			}
			for _, want := range []string{"closed on request", "-> running"} {
				if strings.Contains(l, "fleet/a") && strings.Contains(l, want) {
					seen[want] = true
				}
			}
		case <-time.After(time.Minute):
			t.Fatal("events -f did not show the restart")
		}
	}

	// Stop: gone from the table, listed as stopped; respawn: back.
	if out, code = f.procsup(t, token, "stop", "fleet/b"); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, out)
	}
	var snap messages.Snapshot
	getJSON(t, f.srv.URL+"/status", &snap)
	if len(snap.Stopped) != 1 || snap.Stopped[0] != "b" || snap.Counts["running"] != 1 {
		t.Fatalf("after stop b: %+v", snap)
	}
	back := make(chan struct{}, 1)
	sub := f.system.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.StateChanged); ok && e.PID.Id == "fleet/b" && e.To == messages.Running {
			select {
			case back <- struct{}{}:
			default:
			}
		}
	})
	defer f.system.EventStream.Unsubscribe(sub)
	if out, code = f.procsup(t, token, "respawn", "fleet"); code != 0 {
		t.Fatalf("respawn: exit %d: %s", code, out)
	}
	select {
	case <-back:
	case <-time.After(time.Minute):
		t.Fatal("respawn did not bring b back")
	}
	if table, _ = f.procsup(t, "", "status"); !strings.Contains(table, "2 processes: running 2") {
		t.Fatalf("after the respawn:\n%s", table)
	}

	// Mistakes are clear.
	if out, code = f.procsup(t, token, "restart", "nobody"); code != 1 || !strings.Contains(out, `no actor "nobody"`) {
		t.Errorf("restart of nothing: exit %d: %s", code, out)
	}
	if out, code = f.procsup(t, token, "respawn", "a"); code != 1 || !strings.Contains(out, "respawn takes a tree") {
		t.Errorf("respawn of a process: exit %d: %s", code, out)
	}
	if out, code = f.procsup(t, token, "bogus"); code != 2 {
		t.Errorf("a bad command: exit %d: %s", code, out)
	}

	// Every action, refused or taken, is in the handler's log with who and what.
	log := f.log.String()
	for _, want := range []string{
		`msg="procsup: control action refused" action=restart name=a`,
		`status=401`, `why="wrong token"`,
		`msg="procsup: control action done" action=restart name=a`,
		`msg="procsup: control action done" action=stop name=fleet/b`,
		`msg="procsup: control action done" action=respawn name=fleet`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the handler's log lacks %s:\n%s", want, log)
		}
	}
	if !strings.Contains(log, "from=127.0.0.1:") {
		t.Errorf("the log does not say who asked:\n%s", log)
	}
}

// Without a token the program gave, control is off: 403 to everyone, GET is not allowed.
func TestControlIsOffWithoutAToken(t *testing.T) {
	f := newFixture(t, "")
	out, code := f.procsup(t, "anything", "stop", "a")
	if code != 1 || !strings.Contains(out, "403") || !strings.Contains(out, "control is off") {
		t.Fatalf("stop with control off: exit %d: %s", code, out)
	}
	res, err := http.Get(f.srv.URL + "/control/stop?name=a")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /control/stop: %s, want 405", res.Status)
	}
	if table, _ := f.procsup(t, "", "status"); !strings.Contains(table, "2 processes: running 2") {
		t.Fatalf("a refused stop stopped something:\n%s", table)
	}
}

// status -w redraws the table in place until interrupted.
func TestStatusWatchRefreshes(t *testing.T) {
	f := newFixture(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, f.bin, "-addr", f.srv.URL, "status", "-w", "-every", "50ms")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Three screens, each cleared first and holding the table.
	r := bufio.NewReader(pipe)
	var drawn strings.Builder
	for screens := 0; screens < 3; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("status -w ended: %v, after %q", err, drawn.String())
		}
		drawn.WriteString(line)
		if strings.HasPrefix(line, "\x1b[H\x1b[2J") {
			screens++
		}
	}
	cmd.Process.Signal(os.Interrupt)
	io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("status -w after an interrupt: %v", err)
	}
	if !strings.Contains(drawn.String(), "fleet/a") {
		t.Fatalf("status -w drew no table: %q", drawn.String())
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A pool's process restarted from the command: the pool closes it and starts another in
// its place.
func TestRestartAPoolsProcess(t *testing.T) {
	system, cfg, bin := setup(t)
	props, err := actors.NewPool(actors.PoolConfig{Process: cfg, Target: 2})
	if err != nil {
		t.Fatal(err)
	}
	ready, closed := make(chan *actor.PID, 8), make(chan *actor.PID, 8)
	sub := system.EventStream.Subscribe(func(ev any) {
		e, ok := ev.(*messages.PoolEvent)
		if !ok {
			return
		}
		if to := map[messages.PoolEventKind]chan *actor.PID{messages.PoolReady: ready, messages.PoolClosed: closed}[e.Kind]; to != nil {
			select {
			case to <- e.Process:
			default: // more than the test reads: never block the pool
			}
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	pool := spawnNamed(t, system, props, "pool")
	status := httpstatus.New(system, pool, httpstatus.Options{ControlToken: token, Logger: cfg.Logger})
	srv := httptest.NewServer(status)
	t.Cleanup(func() { srv.Close(); status.Close() })
	var first *actor.PID
	for range 2 {
		select {
		case first = <-ready:
		case <-time.After(time.Minute):
			t.Fatal("the pool's processes were not ready")
		}
	}
	f := &fixture{system: system, tree: pool, srv: srv, bin: bin}
	out, code := f.procsup(t, token, "restart", first.Id)
	if code != 0 || !strings.Contains(out, "its pool starts a replacement") {
		t.Fatalf("restart of a pool's process: exit %d: %s", code, out)
	}
	for replaced, gone := false, false; !replaced || !gone; {
		select {
		case p := <-ready:
			replaced = p.Id != first.Id
		case p := <-closed:
			gone = gone || p.Id == first.Id
		case <-time.After(time.Minute):
			t.Fatalf("the pool did not replace the restarted process (replaced %v, closed %v)", replaced, gone)
		}
	}
	table, _ := f.procsup(t, "", "status")
	if strings.Contains(table, first.Id+" ") {
		t.Fatalf("the restarted process is still listed:\n%s", table)
	}
}
