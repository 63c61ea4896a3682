package procsup_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/childproc/python"
	"github.com/procsup/procsup/messages"
	"github.com/vmihailenco/msgpack/v5"
)

// The adoption tests run this test binary as a supervising program (adopterProgram)
// that starts its workers through a keeper, kill it, run it again and watch the second
// one adopt what the first left. The program says what happens on its stdout, a line an
// event: "RUNNING name pid adopted", "REFUSED name pid why", "EXITED name pid reason",
// "ASKED name result".

const bigTransfer = 15 << 20

func adopterProgram() {
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Printf(format+"\n", args...)
		out.Unlock()
	}
	level := slog.LevelWarn
	if os.Getenv("ADOPT_DEBUG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(&childLogs{Handler: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}), say: say})
	ctx := context.Background()
	k, err := launch.OpenKeeper(ctx, os.Getenv("KEEPER_NAME"), launch.KeeperOptions{
		Dir: os.Getenv("KEEPER_DIR"), AdoptWithin: 20 * time.Second, Logger: logger, ClaimWithin: 5 * time.Second})
	if err != nil {
		fmt.Println("OPENFAILED", err)
		os.Exit(1)
	}
	say("KEEPER %d", k.Pid())
	system := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	adopted := map[string]bool{} // the Adopted event comes before the StateChanged
	system.EventStream.Subscribe(func(ev any) {
		switch ev := ev.(type) {
		case *messages.StateChanged:
			if ev.To == messages.Initializing || ev.To == messages.Closing {
				say("%s %s %d", strings.ToUpper(ev.To.String()), ev.PID.Id, ev.OSPid)
			}
			if ev.To == messages.Running {
				out.Lock()
				was := adopted[ev.PID.Id]
				delete(adopted, ev.PID.Id)
				out.Unlock()
				say("RUNNING %s %d %v", ev.PID.Id, ev.OSPid, was)
			}
		case *messages.Adopted:
			if ev.Refused != "" {
				say("REFUSED %s %d %s", ev.PID.Id, ev.OSPid, strings.ReplaceAll(ev.Refused, " ", "_"))
			} else {
				out.Lock()
				adopted[ev.PID.Id] = true
				out.Unlock()
			}
		case *messages.Exited:
			say("EXITED %s %d %d %s", ev.PID.Id, ev.OSPid, ev.LogsDropped, ev.Reason)
		}
	})
	cfg := workerConfig(os.Getenv("WORKER_MODE"), logger)
	switch os.Getenv("ADOPT_KIND") {
	case "plain": // a program without the protocol: its stdout lines are its logs
		cfg.Launcher = &launch.Command{Path: "/bin/sh", Args: []string{"-c", `i=0; while :; do echo "line $i"; i=$((i+1)); sleep 0.05; done`}}
		cfg.Plain = &actors.PlainConfig{}
	case "python":
		py, err := python.Interpreter()
		if err != nil {
			fmt.Println("NOPYTHON", err)
			os.Exit(0)
		}
		cfg.Launcher = &launch.Command{Path: py, Args: []string{"childproc/python/tests/testworker.py"},
			Env: []string{"WORKER_MODE=healthy", "PATH=/usr/bin:/bin"}}
	}
	cfg.Keeper = k
	cfg.Restart = actors.Permanent
	// Quiet streams: a kill lands between frames, but for the tests that cut one.
	cfg.PingInterval, cfg.PingTimeout = time.Second, 10*time.Second
	if dir := os.Getenv("ADOPT_CGROUPS"); dir != "" {
		if cfg.Cgroups, err = launch.OpenCgroups(dir, logger); err != nil {
			panic(err)
		}
	}
	n, _ := strconv.Atoi(os.Getenv("ADOPT_N"))
	var root *actor.PID
	if os.Getenv("ADOPT_POOL") != "" {
		cfg.Payload = []byte(os.Getenv("ADOPT_POOL")) // the config's version: another one retires the adopted
		props, err := actors.NewPool(actors.PoolConfig{Process: cfg, Target: n, Reuse: true, StableAfter: 100 * time.Millisecond})
		if err != nil {
			panic(err)
		}
		root, _ = system.Root.SpawnNamed(props, "pool")
	} else {
		var specs []actors.Spec
		for i := range n {
			specs = append(specs, actors.Spec{Name: fmt.Sprint("w", i), Props: mustProps(cfg)})
		}
		root, _ = system.Root.SpawnNamed(actors.NewTree(nil, specs...), "tree")
	}
	actions := bufio.NewScanner(os.Stdin)
	for actions.Scan() {
		f := strings.Fields(actions.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "ask": // ask NAME KIND BODY: an echo, say
			target := actor.NewPID(system.Address(), f[1])
			go func() {
				body := []byte(strings.Join(f[3:], " "))
				res, err := actors.Ask(ctx, system, target, f[2], body)
				if err != nil {
					say("ASKED %s error %v", f[1], err)
				} else {
					say("ASKED %s ok %s", f[1], res)
				}
			}()
		case "inflight": // inflight NAME: an Ask the child answers only when shut down
			target := actor.NewPID(system.Address(), f[1])
			go actors.Ask(ctx, system, target, "hang", nil)
		case "status": // status NAME
			st, err := system.Root.RequestFuture(actor.NewPID(system.Address(), f[1]), &messages.GetStatus{}, 5*time.Second).Result()
			if err != nil {
				say("STATUS %s error %v", f[1], err)
			} else {
				st := st.(*messages.Status)
				say("STATUS %s %s %d adopted=%v cgroup=%s", f[1], st.State, st.OSPid, st.Adopted, st.Cgroup)
			}
		case "unstarted": // unstarted NAME: a worker started through the keeper, as an
			// actor starts one, and never sent its InitializeRequest: a crash now is a
			// crash while starting
			note, _ := msgpack.Marshal(map[string]any{"state": "starting"})
			p, err := launch.Start(ctx, cfg.Launcher, launch.Kept(k, f[1], note, 0))
			if err != nil {
				say("UNSTARTED error %v", err)
			} else {
				say("UNSTARTED %d", p.Pid())
			}
		case "close": // close NAME
			system.Root.Send(actor.NewPID(system.Address(), f[1]), &messages.Close{Reason: "test"})
		case "to-child", "from-child": // 15 MiB Asks one after the other, each way
			target := actor.NewPID(system.Address(), f[1])
			go func() {
				body, kind := bytes.Repeat([]byte{'x'}, bigTransfer), "env"
				if f[0] == "from-child" {
					body, kind = []byte(strconv.Itoa(bigTransfer)), "big"
				}
				for i := 0; ; i++ {
					if _, err := actors.Ask(ctx, system, target, kind, body); err != nil {
						say("ASKED %s error %v", f[1], err)
						return
					}
					if i == 0 {
						say("TRANSFERRING %s", f[1])
					}
				}
			}()
		}
	}
	// stdin closed: stop everything, as a program that ends does.
	system.Root.StopFuture(root).Wait()
	k.Close()
	say("STOPPED")
	os.Exit(0)
}

// childLogs says on stdout the child's records that tests wait for.
type childLogs struct {
	slog.Handler
	say func(string, ...any)
}

func (h *childLogs) Enabled(context.Context, slog.Level) bool { return true }

func (h *childLogs) Handle(ctx context.Context, r slog.Record) error {
	switch {
	case r.Message == "hanging", r.Message == "tick", r.Message == "worker started":
		h.say("CHILDLOG %s", r.Message)
	case strings.HasPrefix(r.Message, "line "):
		h.say("STDOUT %s", r.Message)
	}
	if h.Handler.Enabled(ctx, r.Level) {
		return h.Handler.Handle(ctx, r)
	}
	return nil
}

func (h *childLogs) WithAttrs(as []slog.Attr) slog.Handler {
	return &childLogs{Handler: h.Handler.WithAttrs(as), say: h.say}
}

func (h *childLogs) WithGroup(name string) slog.Handler {
	return &childLogs{Handler: h.Handler.WithGroup(name), say: h.say}
}

// adopter is a run of adopterProgram.
type adopter struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	seen   []string
	keeper int
}

// startAdopter runs adopterProgram with n workers in mode, its keeper called name in dir.
func startAdopter(t *testing.T, dir, name, mode string, n int, env ...string) *adopter {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childproc.EnvEntry+"=adopter", "KEEPER_DIR="+dir, "KEEPER_NAME="+name,
		"WORKER_MODE="+mode, "ADOPT_N="+strconv.Itoa(n))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &adopter{t: t, cmd: cmd, lines: make(chan string, 1000)}
	if a.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
	}()
	t.Cleanup(func() {
		a.kill()
		if a.keeper != 0 && isKeeper(a.keeper) { // what a failed test left: the keeper ends its workers
			syscall.Kill(a.keeper, syscall.SIGTERM)
		}
	})
	f := a.expect("KEEPER")
	a.keeper, _ = strconv.Atoi(f[1])
	return a
}

// expect reads the program's lines until one beginning with word, and returns its fields.
func (a *adopter) expect(word string) []string {
	a.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-a.lines:
			if !ok {
				a.t.Fatalf("the program ended before %s", word)
			}
			a.t.Log(line)
			a.seen = append(a.seen, line)
			if f := strings.Fields(line); len(f) > 0 && f[0] == word {
				return f
			}
		case <-timeout:
			a.t.Fatalf("no %s within 60 s", word)
		}
	}
}

// running reads n RUNNING lines and returns the pids by actor name, and whether each
// was adopted.
func (a *adopter) running(n int) (map[string]int, map[string]bool) {
	a.t.Helper()
	pids, adopted := map[string]int{}, map[string]bool{}
	for len(pids) < n {
		f := a.expect("RUNNING")
		pids[f[1]], _ = strconv.Atoi(f[2])
		adopted[f[1]] = f[3] == "true"
	}
	return pids, adopted
}

// adoptedAll reads a RUNNING line for each worker of want and fails unless each runs
// with the pid want gives it, adopted.
func (a *adopter) adoptedAll(want map[string]int) {
	a.t.Helper()
	again, adopted := a.running(len(want))
	for name, pid := range want {
		if again[name] != pid || !adopted[name] {
			a.t.Fatalf("%s: pid %d adopted %v, want %d adopted", name, again[name], adopted[name], pid)
		}
	}
}

// replaced expects the worker old of tree/w0 refused for why (part of the reason, its
// spaces as underscores), a new process running in its place and old ended; it returns
// the new pid.
func (a *adopter) replaced(old int, why string) int {
	a.t.Helper()
	if f := a.expect("REFUSED"); f[2] != strconv.Itoa(old) || !strings.Contains(f[3], why) {
		a.t.Fatalf("refused %v, want %d refused: %s", f, old, why)
	}
	pids, adopted := a.running(1)
	if pids["tree/w0"] == old || adopted["tree/w0"] {
		a.t.Fatalf("running %v adopted %v: want a new process", pids, adopted)
	}
	gone(a.t, "the refused worker ended", old)
	return pids["tree/w0"]
}

// settled reads n RUNNING lines and the n child records that follow ("worker
// started"): the streams are quiet, and a kill lands between frames.
func (a *adopter) settled(n int) (map[string]int, map[string]bool) {
	a.t.Helper()
	pids, adopted := a.running(n)
	started := 0
	for _, line := range a.seen {
		if line == "CHILDLOG worker started" {
			started++
		}
	}
	for ; started < n; started++ {
		a.expect("CHILDLOG")
	}
	return pids, adopted
}

func (a *adopter) do(action string) {
	fmt.Fprintln(a.stdin, action)
}

// kill SIGKILLs the program, as a crash or an OOM kill would end it.
func (a *adopter) kill() {
	if a.cmd.ProcessState == nil {
		a.cmd.Process.Kill()
		a.cmd.Wait()
	}
}

// stop has the program stop its actors and end.
func (a *adopter) stop() {
	a.t.Helper()
	a.stdin.Close()
	a.expect("STOPPED")
	a.cmd.Wait()
}

// isKeeper reports whether pid is a keeper still (not a process that took its pid).
func isKeeper(pid int) bool {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return bytes.HasPrefix(cmdline, []byte("procsup-keeper\x00"))
}

func keeperDir(t *testing.T) string {
	return filepath.Join(t.TempDir(), "keepers")
}

// A supervising program SIGKILLed leaves its workers running; the next one adopts each,
// with its pid, and serves Asks with them; its end ends them and the keeper.
func TestAdoptionAfterACrash(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "crash", "healthy", 3)
	pids, adopted := first.settled(3)
	for name, was := range adopted {
		if was {
			t.Fatalf("%s adopted by the first program", name)
		}
	}
	keeper := first.keeper
	first.kill()
	for name, pid := range pids {
		if !actortest.Alive(pid) {
			t.Fatalf("%s (%d) died with its supervisor", name, pid)
		}
	}
	second := startAdopter(t, dir, "crash", "healthy", 3)
	if second.keeper != keeper {
		t.Fatalf("a new keeper %d, want %d", second.keeper, keeper)
	}
	second.adoptedAll(pids)
	for name := range pids {
		second.do("ask " + name + " echo hello")
		if f := second.expect("ASKED"); f[2] != "ok" || f[3] != "echo:hello" {
			t.Fatalf("ask after adoption: %v", f)
		}
	}
	second.stop()
	for _, line := range second.seen {
		if f := strings.Fields(line); f[0] == "EXITED" && f[3] != "0" {
			t.Errorf("%s: log records lost across the adoption", line)
		}
	}
	within(t, 30*time.Second, "workers and keeper gone", func() bool {
		for _, pid := range pids {
			if actortest.Alive(pid) {
				return false
			}
		}
		return !actortest.Alive(keeper)
	})
}

// gone waits until none of pids runs.
func gone(t *testing.T, what string, pids ...int) {
	t.Helper()
	within(t, 30*time.Second, what, func() bool { return !slices.ContainsFunc(pids, actortest.Alive) })
}

// A worker killed with its supervisor while initializing is not adopted: the next
// program ends it and starts a new one.
func TestAdoptionRefusesAnInitializingWorker(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "init", "initslow", 1)
	f := first.expect("INITIALIZING")
	old, _ := strconv.Atoi(f[2])
	first.kill()
	second := startAdopter(t, dir, "init", "healthy", 1)
	fresh := second.replaced(old, "initialized")
	second.stop()
	gone(t, "the worker and the keeper gone", fresh, second.keeper)
}

// A worker whose supervisor died while starting it (the keeper had started the process,
// the handshake had not begun) is not adopted: the next program ends it and starts one.
func TestAdoptionRefusesAStartingWorker(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "starting", "healthy", 0)
	first.do("unstarted tree/w0")
	f := first.expect("UNSTARTED")
	old, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(f)
	}
	first.kill()
	second := startAdopter(t, dir, "starting", "healthy", 1)
	fresh := second.replaced(old, "initialized")
	second.stop()
	gone(t, "the worker and the keeper gone", fresh, second.keeper)
}

// A request in flight when the supervisor dies gets no answer; the worker carries on,
// is adopted, serves the next program's requests and ends cleanly.
func TestAdoptionWithARequestInFlight(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "inflight", "healthy", 1)
	pids, _ := first.settled(1)
	first.do("inflight tree/w0")
	first.expect("CHILDLOG") // the child took the request: "hanging"
	first.kill()
	second := startAdopter(t, dir, "inflight", "healthy", 1)
	second.adoptedAll(pids)
	second.do("ask tree/w0 echo after")
	if f := second.expect("ASKED"); f[2] != "ok" || f[3] != "echo:after" {
		t.Fatalf("ask: %v", f)
	}
	second.stop()
	for _, line := range second.seen {
		if f := strings.Fields(line); f[0] == "EXITED" && !strings.Contains(line, "closed on request") {
			t.Errorf("%s: want closed on request", line)
		}
	}
	gone(t, "the worker and the keeper gone", pids["tree/w0"], second.keeper)
}

// A worker that was closing is let end (within CloseTimeout), not adopted.
func TestAdoptionLetsAClosingWorkerEnd(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "closing", "ignoreshutdown", 1)
	pids, _ := first.running(1)
	first.do("close tree/w0")
	first.expect("CLOSING")
	first.kill()
	old := pids["tree/w0"]
	second := startAdopter(t, dir, "closing", "healthy", 1)
	fresh := second.replaced(old, "closing")
	second.stop()
	gone(t, "the worker and the keeper gone", fresh, second.keeper)
}

// An adopted worker that crashes is restarted by its tree's strategy, as one it started.
func TestAdoptedWorkerRestartsUnderItsTree(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "restart", "healthy", 2)
	pids, _ := first.settled(2)
	first.kill()
	second := startAdopter(t, dir, "restart", "healthy", 2)
	second.running(2)
	second.do("ask tree/w0 crash")
	second.expect("EXITED")
	again, adopted := second.running(1)
	if again["tree/w0"] == 0 || again["tree/w0"] == pids["tree/w0"] || adopted["tree/w0"] {
		t.Fatalf("after the crash: %v adopted %v, want a new process", again, adopted)
	}
	second.do("status tree/w0")
	if f := second.expect("STATUS"); f[2] != "running" || f[4] != "adopted=false" {
		t.Fatalf("status %v", f)
	}
	second.do("status tree/w1")
	if f := second.expect("STATUS"); f[3] != strconv.Itoa(pids["tree/w1"]) || f[4] != "adopted=true" {
		t.Fatalf("status %v", f)
	}
	second.stop()
	gone(t, "the workers and the keeper gone", again["tree/w0"], pids["tree/w1"], second.keeper)
}

// A supervisor killed in the middle of a 15 MiB frame, either way, leaves a stream cut
// mid-frame: the next program never reads or writes on it; it ends that worker and
// starts a new one, which answers right. The test watches the marks in the keeper's
// memory and stops the worker, so that the kill lands mid-frame every time.
func TestAdoptionAfterACrashMidFrame(t *testing.T) {
	actortest.CheckLeaks(t)
	for _, way := range []string{"to-child", "from-child"} {
		t.Run(way, func(t *testing.T) {
			dir := keeperDir(t)
			first := startAdopter(t, dir, way, "healthy", 1)
			pids, _ := first.running(1)
			worker := pids["tree/w0"]
			marks := keeperMarks(t, first.keeper)
			if way == "to-child" {
				signal(t, worker, syscall.SIGSTOP) // it reads no more: the write stops midway
				first.do(way + " tree/w0")
				waitMark(t, marks, 8) // a fragmented frame on its way to the child
			} else {
				first.do(way + " tree/w0")
				waitMark(t, marks, 0)              // a frame from the child being read
				signal(t, worker, syscall.SIGSTOP) // it writes no more: the read stops midway
			}
			first.kill()
			signal(t, worker, syscall.SIGCONT)
			second := startAdopter(t, dir, way, "healthy", 1)
			fresh := second.replaced(worker, "middle_of_a_frame")
			second.do("ask tree/w0 echo whole")
			if f := second.expect("ASKED"); f[2] != "ok" || f[3] != "echo:whole" {
				t.Fatalf("ask after the crash: %v", f)
			}
			second.stop()
			gone(t, "the worker and the keeper gone", fresh, second.keeper)
		})
	}
}

// keeperMarks maps the page of marks of the keeper with pid keeper (see launch.Marks),
// through its descriptor in /proc.
func keeperMarks(t *testing.T, keeper int) []byte {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", keeper))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		path := fmt.Sprintf("/proc/%d/fd/%s", keeper, e.Name())
		if target, _ := os.Readlink(path); strings.HasPrefix(target, "/memfd:procsup-marks") {
			f, err := os.OpenFile(path, os.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			mem, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Munmap(mem) })
			return mem
		}
	}
	t.Fatalf("keeper %d holds no page of marks", keeper)
	return nil
}

// waitMark waits until the mark at offset off of some worker's slot is set.
func waitMark(t *testing.T, mem []byte, off int) {
	t.Helper()
	within(t, 60*time.Second, "a mark set", func() bool {
		for slot := 0; slot+64 <= len(mem); slot += 64 {
			if mem[slot+off] != 0 {
				return true
			}
		}
		return false
	})
}

// Log records a worker writes while no supervisor is connected wait in its socket and
// reach the next one; none is lost unsaid.
func TestAdoptionKeepsLogsWrittenMeanwhile(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "logs", "tick", 1)
	first.running(1)
	first.expect("CHILDLOG")
	first.kill()
	second := startAdopter(t, dir, "logs", "tick", 1)
	second.running(1)
	second.expect("CHILDLOG")
	second.stop()
	for _, line := range second.seen {
		if f := strings.Fields(line); f[0] == "EXITED" && f[3] != "0" {
			t.Errorf("%s: records lost", line)
		}
	}
}

// A pool adopts its members; a program with another config retires them as new ones are
// ready, as a rolling replacement does.
func TestPoolAdoptsAndRetiresOldMembers(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "pool", "healthy", 2, "ADOPT_POOL=v1")
	pids, _ := first.settled(2)
	first.kill()
	same := startAdopter(t, dir, "pool", "healthy", 2, "ADOPT_POOL=v1")
	same.adoptedAll(pids)
	same.kill()
	next := startAdopter(t, dir, "pool", "healthy", 2, "ADOPT_POOL=v2")
	next.running(2) // the old ones, adopted
	fresh, adopted := next.running(2)
	for name, was := range adopted {
		if was {
			t.Fatalf("%s adopted, want a new member", name)
		}
	}
	gone(t, "the old members retired", slices.Collect(maps.Values(pids))...)
	next.stop()
	gone(t, "the members and the keeper gone", append(slices.Collect(maps.Values(fresh)), next.keeper)...)
}

// With cgroups, the keeper keeps the workers' cgroups: they outlive the program, the
// adopter reads and kills through them, and they go with the workers.
func TestAdoptionWithCgroups(t *testing.T) {
	actortest.CheckLeaks(t)
	cg := childproctest.Cgroups(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "cgroups", "grandchild", 1, "ADOPT_CGROUPS="+cg.Dir())
	pids, _ := first.settled(1)
	first.do("status tree/w0")
	f := first.expect("STATUS")
	cgroup := strings.TrimPrefix(f[5], "cgroup=")
	if cgroup == "" || !strings.HasPrefix(cgroup, cg.Dir()) {
		t.Fatalf("status %v: no cgroup in %s", f, cg.Dir())
	}
	first.kill()
	second := startAdopter(t, dir, "cgroups", "grandchild", 1, "ADOPT_CGROUPS="+cg.Dir())
	second.adoptedAll(pids)
	second.do("status tree/w0")
	if f := second.expect("STATUS"); f[5] != "cgroup="+cgroup {
		t.Fatalf("status %v, want cgroup %s", f, cgroup)
	}
	procs, _ := os.ReadFile(filepath.Join(cgroup, "cgroup.procs"))
	if n := len(strings.Fields(string(procs))); n != 2 {
		t.Fatalf("%d processes in the worker's cgroup, want the worker and its grandchild", n)
	}
	second.stop()
	gone(t, "the keeper gone", second.keeper)
	if _, err := os.Stat(cgroup); err == nil {
		t.Fatalf("the worker's cgroup %s is left", cgroup)
	}
	entries, _ := os.ReadDir(cg.Dir())
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("left in the cgroups directory: %s", e.Name())
		}
	}
}

// The keeper killed: its workers die with it, the program sees them end and cannot
// start new ones through it.
func TestKeeperKilledUnderAProgram(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	a := startAdopter(t, dir, "killed", "healthy", 2)
	pids, _ := a.running(2)
	syscall.Kill(a.keeper, syscall.SIGKILL)
	a.expect("EXITED")
	a.expect("EXITED")
	gone(t, "the workers gone with their keeper", slices.Collect(maps.Values(pids))...)
	a.stop()
}

// A plain program (no protocol) is adopted with its output pipes: its lines go on
// reaching the new program's logs, and its graceful end is its stop signal.
func TestAdoptionOfAPlainProgram(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := keeperDir(t)
	first := startAdopter(t, dir, "plain", "", 1, "ADOPT_KIND=plain")
	pids, _ := first.running(1)
	first.expect("STDOUT")
	first.kill()
	second := startAdopter(t, dir, "plain", "", 1, "ADOPT_KIND=plain")
	second.adoptedAll(pids)
	second.expect("STDOUT") // a line it wrote after the adoption, through the pipe
	second.stop()
	if !slices.ContainsFunc(second.seen, func(l string) bool {
		return strings.HasPrefix(l, "EXITED tree/w0") && strings.Contains(l, "closed on request")
	}) {
		t.Fatalf("no graceful end: %v", second.seen)
	}
	gone(t, "the program and the keeper gone", pids["tree/w0"], second.keeper)
}

// A Python worker (childproc/python) is adopted and answers the new program.
func TestAdoptionOfAPythonWorker(t *testing.T) {
	actortest.CheckLeaks(t)
	if _, err := python.Interpreter(); err != nil {
		t.Skip(err)
	}
	dir := keeperDir(t)
	first := startAdopter(t, dir, "python", "", 1, "ADOPT_KIND=python")
	pids, _ := first.running(1)
	first.do("ask tree/w0 upper before")
	if f := first.expect("ASKED"); f[2] != "ok" || f[3] != "BEFORE" {
		t.Fatalf("ask: %v", f)
	}
	first.kill()
	second := startAdopter(t, dir, "python", "", 1, "ADOPT_KIND=python")
	second.adoptedAll(pids)
	second.do("ask tree/w0 upper after")
	if f := second.expect("ASKED"); f[2] != "ok" || f[3] != "AFTER" {
		t.Fatalf("ask after the adoption: %v", f)
	}
	second.stop()
	gone(t, "the worker and the keeper gone", pids["tree/w0"], second.keeper)
}
