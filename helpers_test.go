package procsup_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childlog"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// The test binary is also every child program the tests start: TestMain runs the entry
// the environment names. The worker's behaviour is chosen by WORKER_MODE.
func TestMain(m *testing.M) {
	childproc.Register("worker", workerHandler())
	if os.Getenv(childproc.EnvEntry) == "raw" {
		rawChild(os.Getenv("WORKER_MODE"))
	}
	if os.Getenv(childproc.EnvEntry) == "supervisor" {
		supervisorProgram()
	}
	if os.Getenv(childproc.EnvEntry) == "cgroupsupervisor" {
		cgroupSupervisorProgram()
	}
	if os.Getenv(childproc.EnvEntry) == "listen" {
		listenProgram()
	}
	if os.Getenv(childproc.EnvEntry) == "adopter" {
		adopterProgram()
	}
	if os.Getenv(childproc.EnvEntry) == "forksupervisor" {
		forkSupervisorProgram()
	}
	childproctest.Main(m)
}

func workerHandler() childproc.Handler {
	mode := os.Getenv("WORKER_MODE")
	var hog [][]byte
	unblock := make(chan struct{})
	quit := make(chan struct{}) // Run returns: the child ends as a program does, flushing its logs
	var handled atomic.Int64
	return childproc.HandlerFuncs{
		InitFunc: func(ctx context.Context, req *wire.InitializeRequest) error {
			switch mode {
			case "initfail":
				return errors.New("model file missing")
			case "initslow":
				time.Sleep(time.Hour)
			case "init100ms":
				time.Sleep(100 * time.Millisecond)
			case "initcrash":
				os.Exit(4)
			case "initexit0":
				os.Exit(0)
			case "initwait": // until the parent's ShutdownRequest cancels Init
				<-ctx.Done()
				return ctx.Err()
			case "initpanic":
				panic("init exploded")
			}
			return nil
		},
		RunFunc: func(ctx context.Context, p *childproc.Peer) error {
			childlog.New(p).Info("worker started", "mode", mode)
			switch mode {
			case "crash":
				time.Sleep(50 * time.Millisecond)
				os.Exit(3)
			case "exit0":
				return nil
			case "stderr":
				fmt.Fprint(os.Stderr, strings.Repeat("noise\n", 1000)+"fatal error: all goroutines are asleep\n")
				os.Exit(2)
			case "panic":
				panic("boom")
			case "ignoreshutdown":
				select {}
			case "memhog":
				for {
					b := make([]byte, 16<<20)
					for i := range b {
						b[i] = 1
					}
					hog = append(hog, b)
					select {
					case <-time.After(20 * time.Millisecond):
					case <-ctx.Done():
						return nil
					}
				}
			case "tick": // a record every 20 ms
				t := time.NewTicker(20 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-t.C:
						childlog.New(p).Info("tick")
					case <-ctx.Done():
						return nil
					}
				}
			case "logflood":
				for i := 0; ctx.Err() == nil; i++ {
					childlog.New(p).Info("flood", "i", i)
				}
				return nil
			case "grandchild":
				cmd := exec.Command("sleep", "1000")
				if err := cmd.Start(); err != nil {
					return err
				}
				p.Send("grandchild", []byte(strconv.Itoa(cmd.Process.Pid)))
			case "escapee": // a grandchild in a session of its own, and a double-forked daemon
				cmd := exec.Command("sleep", "1000")
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
				if err := cmd.Start(); err != nil {
					return err
				}
				go cmd.Wait()
				daemon, err := exec.Command("sh", "-c", `setsid sh -c 'sleep 1000 >/dev/null 2>&1 & echo $!' </dev/null`).Output()
				if err != nil {
					return err
				}
				p.Send("escapee", []byte(strconv.Itoa(cmd.Process.Pid)+" "+strings.TrimSpace(string(daemon))))
			case "spin": // a busy child
				for ctx.Err() == nil {
				}
				return nil
			}
			select {
			case <-ctx.Done():
			case <-quit:
			}
			return nil
		},
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *wire.Request) ([]byte, error) {
			switch r.Kind {
			case "env": // the value of the environment variable the body names
				return []byte(os.Getenv(string(r.Body))), nil
			case "fail":
				return nil, errors.New("refused")
			case "panic":
				panic("request exploded")
			case "crash":
				os.Exit(3)
			case "big": // a reply of the size the body names
				n, _ := strconv.Atoi(string(r.Body))
				return make([]byte, n), nil
			case "send-big", "request-big": // the child sends the parent a body of that size
				n, _ := strconv.Atoi(string(r.Body))
				var err error
				if r.Kind == "send-big" {
					err = p.Send("big", make([]byte, n))
				} else {
					_, err = p.Request(ctx, "big", make([]byte, n))
				}
				return nil, err
			case "log-big": // one record of that size, then a small one
				n, _ := strconv.Atoi(string(r.Body))
				childlog.New(p).Info(strings.Repeat("x", n))
				childlog.New(p).Info("after the big record")
				return nil, nil
			case "unblock":
				close(unblock)
				return nil, nil
			case "handled":
				return []byte(strconv.FormatInt(handled.Load(), 10)), nil
			case "hang": // never answers: says so in its log, then waits for the shutdown
				childlog.New(p).Info("hanging")
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return append([]byte("echo:"), r.Body...), nil
		},
		MessageFunc: func(ctx context.Context, p *childproc.Peer, m *wire.Message) {
			switch m.Kind {
			case "log":
				childlog.New(p).Warn("child says hello", "n", 42)
			case "exit":
				os.Exit(3) // a crash on cue, for tests that must not race initialization
			case "block": // the message handler waits for an "unblock" request
				<-unblock
			case "panic":
				panic("message exploded")
			case "log-zeros":
				childlog.New(p).Info("zeros", slog.Int("n", 0), slog.Bool("ok", false), slog.String("s", ""),
					slog.Duration("d", 0), slog.Float64("f", 0), slog.Uint64("u", 0))
			case "log-reserved":
				childlog.New(p).Info("reserved", "pid", 1, "actor", "impostor", "msg", "mine")
			case "log-deep":
				var deep any = slog.Int("leaf", 1)
				for i := 19; i >= 0; i-- {
					deep = slog.Group("g"+strconv.Itoa(i), deep)
				}
				childlog.New(p).Info("deep", deep)
				many := make([]any, 0, 2000)
				for i := range 1000 {
					many = append(many, "k"+strconv.Itoa(i), i)
				}
				childlog.New(p).Info("many", many...)
				childlog.New(p).Info("after the odd records")
			case "log-burst", "log-burst-stay": // n records as fast as it can, then Run returns (or not)
				n, _ := strconv.Atoi(string(m.Body))
				for i := range n {
					childlog.New(p).Info("burst", "i", i)
				}
				if m.Kind == "log-burst" {
					close(quit)
				}
			}
			handled.Add(1)
		},
	}
}

// rawChild speaks the protocol by hand, to misbehave in ways the runtime never would.
func rawChild(mode string) {
	f := os.NewFile(3, "control")
	r, w := wire.NewReader(f, 0), wire.NewWriter(f, 0)
	if _, err := r.Read(); err != nil {
		os.Exit(1)
	}
	switch mode {
	case "garbage":
		w.Write(&wire.InitializeResponse{})
		f.Write([]byte("this is not a frame, it is garbage \x00\xff\xfe"))
	case "closesocket":
		w.Write(&wire.InitializeResponse{})
		f.Close()
	case "wrongfirst":
		w.Write(&wire.PongResponse{})
	case "hugelength":
		w.Write(&wire.InitializeResponse{})
		f.Write([]byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3})
	case "partial":
		w.Write(&wire.InitializeResponse{})
		frame, _ := wire.Encode(&wire.Exiting{Reason: "half of this frame never comes"})
		f.Write(frame[:len(frame)/2])
	case "wrongtime":
		w.Write(&wire.InitializeResponse{})
		w.Write(&wire.InitializeResponse{}) // a second one, while running
	case "noread":
		w.Write(&wire.InitializeResponse{})
	case "initthencrash": // initializes, then crashes at once
		w.Write(&wire.InitializeResponse{})
		os.Exit(3)
	case "record": // records the order in which messages and requests arrive
		w.Write(&wire.InitializeResponse{Fragments: true})
		recordArrivals(r, w)
	case "logjunk": // an unknown type, a body that does not decode and a ping on the log socket, then a record
		w.Write(&wire.InitializeResponse{})
		logs := os.NewFile(4, "logs")
		lw := wire.NewWriter(logs, 0)
		body := []byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa6, 'f', 'u', 't', 'u', 'r', 'e', 0xa4, 'd', 'a', 't', 'a', 0x80}
		logs.Write(append([]byte{0, 0, 0, byte(len(body))}, body...))
		logs.Write([]byte{0, 0, 0, 1, 0xc1})
		lw.Write(&wire.PingRequest{})
		lw.Write(&wire.LogRecord{Message: "still heard", Seq: 4})
	}
	time.Sleep(time.Hour)
}

// recordArrivals keeps the body of every message and request in the order they arrive;
// it answers a request of kind "arrivals" with them, one a line, and every other request
// with its body.
func recordArrivals(r *wire.Reader, w *wire.Writer) {
	var arrived []string
	for {
		m, err := r.Read()
		if err != nil {
			os.Exit(0)
		}
		switch m := m.(type) {
		case *wire.Message:
			arrived = append(arrived, string(m.Body))
		case *wire.Request:
			if m.Kind == "arrivals" {
				w.Write(&wire.Reply{ID: m.ID, Body: []byte(strings.Join(arrived, "\n"))})
				continue
			}
			arrived = append(arrived, string(m.Body))
			w.Write(&wire.Reply{ID: m.ID, Body: m.Body})
		case *wire.ShutdownRequest:
			os.Exit(0)
		}
	}
}

// supervisorProgram is a parent in a process of its own: it supervises three workers,
// prints their pids, and waits to be killed.
func supervisorProgram() {
	system := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	superviseAndWait(system, mustProps(workerConfig("healthy", nil)))
}

// superviseAndWait supervises SUPERVISOR_N workers of props in a tree, prints each one's
// pid once it runs, and waits to be killed.
func superviseAndWait(system *actor.ActorSystem, props *actor.Props) {
	n, _ := strconv.Atoi(os.Getenv("SUPERVISOR_N"))
	var specs []actors.Spec
	for i := range n {
		specs = append(specs, actors.Spec{Name: fmt.Sprint("w", i), Props: props})
	}
	pids := make(chan int, n)
	system.EventStream.Subscribe(func(ev any) {
		if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
			pids <- sc.OSPid
		}
	})
	system.Root.Spawn(actors.NewTree(nil, specs...))
	for range n {
		fmt.Println(<-pids)
	}
	select {}
}

func quietLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func mustProps(cfg actors.Config) *actor.Props {
	p, err := actors.NewProcess(cfg)
	if err != nil {
		panic(err)
	}
	return p
}

// workerConfig is a config for the test worker in mode, with quick timings for tests.
func workerConfig(mode string, logger *slog.Logger) actors.Config {
	cmd, err := launch.SelfCommand("worker")
	if err != nil {
		panic(err)
	}
	cmd.Env = append(cmd.Env, "WORKER_MODE="+mode)
	cmd.Stderr = os.Stderr
	cfg := actors.NewConfig(cmd)
	cfg.InitializeTimeout = 5 * time.Second
	cfg.CloseTimeout = 5 * time.Second
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PingTimeout = 5 * time.Second
	cfg.MemoryWarnMB = 0
	cfg.Restart = actors.Temporary
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(discard{}, nil))
	}
	cfg.Logger = logger
	return cfg
}

func rawConfig(mode string) actors.Config {
	cfg := workerConfig(mode, nil)
	cmd := cfg.Launcher.(*launch.Command)
	cmd.Env = append(cmd.Env, childproc.EnvEntry+"=raw")
	return cfg
}

// newSystem returns an actor system with a quiet logger, and checks for leaks when the
// test ends (the check is registered first, so it runs last).
func newSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	actortest.CheckLeaks(t)
	system := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger), actor.WithDeadLetterThrottleInterval(time.Millisecond))
	t.Cleanup(system.Shutdown)
	return system
}

// spawn spawns a process actor for cfg under a probe whose strategy is strategy.
func spawn(t *testing.T, system *actor.ActorSystem, cfg actors.Config, strategy actor.SupervisorStrategy) (*actortest.Probe, *actor.PID) {
	t.Helper()
	probe := actortest.NewProbe(t, system, strategy)
	pid := probe.Spawn(mustProps(cfg), "proc")
	probe.Watch(pid)
	stopAtEnd(t, system, pid)
	return probe, pid
}

// stopAtEnd stops pid when the test ends and waits, up to 20 s, until it (and, for a
// process actor or a tree, every process below it) is gone.
func stopAtEnd(t *testing.T, system *actor.ActorSystem, pid *actor.PID) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := actors.StopAndWait(ctx, system, pid); err != nil {
			t.Error(err)
		}
	})
}

// stopInBackground stops pid and waits for it (up to 30 s) on a goroutine of its own;
// the channel gets StopAndWait's result.
func stopInBackground(system *actor.ActorSystem, pid *actor.PID) <-chan error {
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- actors.StopAndWait(ctx, system, pid)
	}()
	return stopped
}

func running(p *actortest.Probe) *messages.StateChanged {
	return actortest.ExpectType(p, 10*time.Second, func(e *messages.StateChanged) bool { return e.To == messages.Running })
}

func exited(p *actortest.Probe) *messages.Exited {
	return actortest.ExpectType[*messages.Exited](p, 15*time.Second)
}

func terminated(p *actortest.Probe, pid *actor.PID) {
	actortest.ExpectType(p, 15*time.Second, func(e *actor.Terminated) bool { return e.Who.Equal(pid) })
}

func status(t *testing.T, system *actor.ActorSystem, pid *actor.PID) *messages.Status {
	t.Helper()
	res, err := system.Root.RequestFuture(pid, &messages.GetStatus{}, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return res.(*messages.Status)
}

// stillRunning checks that pid runs the same OS process ospid: nothing ended it.
func stillRunning(t *testing.T, system *actor.ActorSystem, pid *actor.PID, ospid int) {
	t.Helper()
	if st := status(t, system, pid); st.State != messages.Running || st.OSPid != ospid {
		t.Fatalf("status %+v, want running with pid %d", st, ospid)
	}
}

func ask(t *testing.T, system *actor.ActorSystem, pid *actor.PID, kind, body string) *messages.Response {
	t.Helper()
	res, err := system.Root.RequestFuture(pid, &messages.Ask{Kind: kind, Body: []byte(body)}, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("ask: %v", err)
	}
	return res.(*messages.Response)
}

// within waits until cond holds, polling, or fails after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func signal(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d %v: %v", pid, sig, err)
	}
}

// recordingHandler keeps every slog record, for tests that check the parent's logs.
type recordingHandler struct {
	mu      *sync.Mutex
	records *[]slog.Record
	attrs   []slog.Attr
}

func newRecorder() *recordingHandler {
	return &recordingHandler{mu: &sync.Mutex{}, records: &[]slog.Record{}}
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	*h.records = append(*h.records, r)
	h.mu.Unlock()
	return nil
}
func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}
func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

// find returns the first record with message msg, and its attributes by key.
func (h *recordingHandler) find(msg string) (map[string]slog.Value, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.records {
		if r.Message == msg {
			attrs := map[string]slog.Value{}
			r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
			return attrs, true
		}
	}
	return nil, false
}

func slogWith(h *recordingHandler) *slog.Logger { return slog.New(h) }

// each calls f with every record so far.
func (h *recordingHandler) each(f func(slog.Record)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.records {
		f(r)
	}
}

// count returns how many records have message msg.
func (h *recordingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.records {
		if r.Message == msg {
			n++
		}
	}
	return n
}

// listenProgram is a plain program: after a moment it listens on LISTEN_ADDR and
// accepts until it is killed.
func listenProgram() {
	time.Sleep(200 * time.Millisecond)
	l, err := net.Listen("tcp", os.Getenv("LISTEN_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.Close()
	}
}
