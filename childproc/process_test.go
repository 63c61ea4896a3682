package childproc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/messages/wire/wireslog"
)

type conn struct {
	p *launch.Process
	r *wire.Reader
	w *wire.Writer
}

// start launches the test binary as the named child and makes sure it is gone when the
// test ends.
func start(t testing.TB, entry string, env ...string) *conn {
	t.Helper()
	cmd, err := launch.SelfCommand(entry)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	p, err := launch.Start(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		p.Wait(context.Background())
		p.Close()
	})
	return &conn{p: p, r: wire.NewReader(p.Control(), 0), w: wire.NewWriter(p.Control(), 0)}
}

func (c *conn) send(t testing.TB, m wire.Wire) {
	t.Helper()
	if err := c.w.Write(m); err != nil {
		t.Fatalf("send %T: %v", m, err)
	}
}

func (c *conn) recv(t testing.TB) wire.Wire {
	t.Helper()
	c.p.Control().SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := c.r.Read()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m
}

func (c *conn) initialize(t testing.TB, req *wire.InitializeRequest) *wire.InitializeResponse {
	t.Helper()
	c.send(t, req)
	m := c.recv(t)
	resp, ok := m.(*wire.InitializeResponse)
	if !ok {
		t.Fatalf("first message is %T (%+v), want InitializeResponse", m, m)
	}
	return resp
}

func (c *conn) wait(t testing.TB) launch.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return st
}

func TestLifecycle(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	if resp := c.initialize(t, &wire.InitializeRequest{PingInterval: time.Second, PingTimeout: 5 * time.Second}); resp.Error != "" {
		t.Fatalf("init error %q", resp.Error)
	}
	for i := range 3 {
		c.send(t, &wire.PingRequest{SentAt: int64(100 + i)})
		pong, ok := c.recv(t).(*wire.PongResponse)
		if !ok || pong.SentAt != int64(100+i) || pong.ChildTime == 0 {
			t.Fatalf("pong %d: %#v", i, pong)
		}
	}
	c.send(t, &wire.Request{ID: 1, Kind: "echo", Body: []byte("hello")})
	if r, ok := c.recv(t).(*wire.Reply); !ok || r.ID != 1 || string(r.Body) != "hello" || r.Error != "" {
		t.Fatalf("reply: %#v", r)
	}
	c.send(t, &wire.Request{ID: 2, Kind: "fail"})
	if r, ok := c.recv(t).(*wire.Reply); !ok || r.ID != 2 || r.Error != "request refused" {
		t.Fatalf("error reply: %#v", r)
	}
	// The child asks the parent something and reports the answer.
	c.send(t, &wire.Message{Kind: "ask", Body: []byte("2+2")})
	req, ok := c.recv(t).(*wire.Request)
	if !ok || req.Kind != "question" || string(req.Body) != "2+2" {
		t.Fatalf("child request: %#v", req)
	}
	c.send(t, &wire.Reply{ID: req.ID, Body: []byte("4")})
	if m, ok := c.recv(t).(*wire.Message); !ok || m.Kind != "answer" || string(m.Body) != "4" {
		t.Fatalf("answer: %#v", m)
	}
	c.send(t, &wire.ShutdownRequest{Reason: "test over"})
	ex, ok := c.recv(t).(*wire.Exiting)
	if !ok || !strings.Contains(ex.Reason, "test over") {
		t.Fatalf("exiting: %#v", ex)
	}
	if _, err := c.r.Read(); !errors.Is(err, wire.ErrClosed) {
		t.Fatalf("after Exiting: %v, want ErrClosed", err)
	}
	if st := c.wait(t); !st.Success() {
		t.Fatalf("exit: %v", st)
	}
}

// A request that reaches a child after its shutdown began gets an error reply whose
// code says so, not one a handler could have returned.
func TestRequestsDuringShutdownSaySo(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "concurrent")
	if resp := c.initialize(t, &wire.InitializeRequest{}); resp.Error != "" {
		t.Fatalf("init error %q", resp.Error)
	}
	c.send(t, &wire.Request{ID: 1, Kind: "slow"}) // holds the shutdown's drain
	c.send(t, &wire.ShutdownRequest{Reason: "test over"})
	// Requests until the child is gone: some before the drain, some within it.
	for id := uint64(2); id < 1000; id++ {
		if err := c.w.Write(&wire.Request{ID: id, Kind: "echo"}); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	refused := 0
	for {
		switch m := c.recv(t).(type) {
		case *wire.Reply:
			if m.Error != "" {
				if m.Code != wire.CodeShuttingDown {
					t.Fatalf("reply %d: %q with code %q, want %q", m.ID, m.Error, m.Code, wire.CodeShuttingDown)
				}
				refused++
			}
		case *wire.Exiting:
			if refused == 0 {
				t.Fatal("no request was refused during the shutdown")
			}
			return
		}
	}
}

// A quick handler's requests are answered by the read loop, one at a time and in order:
// a slow request's reply comes before the fast one sent after it, and so does the pong of
// a ping sent after it. Without QuickRequests each request has a goroutine, and the fast
// one overtakes.
func TestQuickRequestsAnsweredInOrder(t *testing.T) {
	actortest.CheckLeaks(t)
	for _, tc := range []struct {
		entry string
		want  []string
	}{
		{"quick", []string{"reply 1", "reply 2", "pong"}},
		{"concurrent", nil}, // the slow reply last; the other two in either order
	} {
		c := start(t, tc.entry)
		if resp := c.initialize(t, &wire.InitializeRequest{PingInterval: time.Second, PingTimeout: 5 * time.Second}); resp.Error != "" {
			t.Fatalf("init error %q", resp.Error)
		}
		c.send(t, &wire.Request{ID: 1, Kind: "slow", Body: []byte("1")})
		c.send(t, &wire.Request{ID: 2, Kind: "fast", Body: []byte("2")})
		c.send(t, &wire.PingRequest{SentAt: 7})
		var got []string
		for range 3 {
			switch m := c.recv(t).(type) {
			case *wire.Reply:
				got = append(got, fmt.Sprintf("reply %d", m.ID))
			case *wire.PongResponse:
				got = append(got, "pong")
			}
		}
		if tc.want == nil && got[2] != "reply 1" || tc.want != nil && strings.Join(got, ", ") != strings.Join(tc.want, ", ") {
			t.Fatalf("%s child: answers in the order %v, want %v (nil: the slow one last)", tc.entry, got, tc.want)
		}
		c.send(t, &wire.ShutdownRequest{Reason: "done"})
		c.wait(t)
	}
}

// Each reply is its request's alone: one after an error or a panic carries no error,
// code or body of it (a quick handler's replies are written from one reused value).
func TestRepliesCarryNothingOfTheLast(t *testing.T) {
	actortest.CheckLeaks(t)
	for _, entry := range []string{"quick", "concurrent"} {
		c := start(t, entry)
		if resp := c.initialize(t, &wire.InitializeRequest{PingInterval: time.Second, PingTimeout: 5 * time.Second}); resp.Error != "" {
			t.Fatalf("init error %q", resp.Error)
		}
		for _, tc := range []struct {
			kind string
			want wire.Reply
		}{
			{"fail", wire.Reply{ID: 1, Error: "request refused"}}, // its handler's body dropped
			{"echo", wire.Reply{ID: 2, Body: []byte("two")}},
			{"panic", wire.Reply{ID: 3, Error: "panic: handler bug", Code: wire.CodePanic}},
			{"echo", wire.Reply{ID: 4}},
		} {
			c.send(t, &wire.Request{ID: tc.want.ID, Kind: tc.kind, Body: tc.want.Body})
			// One at a time: the concurrent child's replies could overtake each other.
			m := c.recv(t)
			got, ok := m.(*wire.Reply)
			if !ok {
				t.Fatalf("%s child: request %d answered with a %T", entry, tc.want.ID, m)
			}
			w := tc.want
			if got.ID != w.ID || string(got.Body) != string(w.Body) || got.Error != w.Error || got.Code != w.Code {
				t.Fatalf("%s child: reply %+v, want %+v", entry, *got, w)
			}
		}
		c.send(t, &wire.ShutdownRequest{Reason: "done"})
		c.wait(t)
	}
}

func TestInitErrorReachesParent(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	resp := c.initialize(t, &wire.InitializeRequest{Payload: []byte("fail")})
	if resp.Error != "model file missing" {
		t.Fatalf("init error %q", resp.Error)
	}
	if st := c.wait(t); st.Code != 1 {
		t.Fatalf("exit: %v, want exit code 1", st)
	}
}

func TestChildExitsWhenParentCloses(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	c.initialize(t, &wire.InitializeRequest{})
	c.p.Close()
	if st := c.wait(t); st.Code != 1 {
		t.Fatalf("exit: %v, want exit code 1 (parent gone)", st)
	}
}

func TestChildExitsWhenParentFallsSilent(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo", childproc.EnvSilenceGrace+"=100ms")
	c.initialize(t, &wire.InitializeRequest{PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	began := time.Now()
	if st := c.wait(t); st.Code != 1 {
		t.Fatalf("exit: %v, want exit code 1", st)
	}
	if d := time.Since(began); d < 300*time.Millisecond {
		t.Fatalf("exited after %v, before ping timeout + grace (300ms)", d)
	}
}

// Silence counts only once the child runs: an Init that outlasts the silence rule's span
// does not end the child, though the read of the control socket begun at the handshake
// times out while it runs.
func TestSilenceCountsFromRunning(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo", childproc.EnvSilenceGrace+"=100ms")
	resp := c.initialize(t, &wire.InitializeRequest{PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond, Payload: []byte("850ms")})
	if resp.Error != "" {
		t.Fatalf("Init failed: %s", resp.Error)
	}
	ran := time.Now()
	if st := c.wait(t); st.Code != 1 {
		t.Fatalf("exit: %v, want exit code 1", st)
	}
	if d := time.Since(ran); d < 200*time.Millisecond {
		t.Fatalf("exited %v after it ran, before ping timeout + grace (300ms)", d)
	}
}

func TestChildExitsOnGarbageFromParent(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	c.initialize(t, &wire.InitializeRequest{})
	c.p.Control().Write([]byte{0, 0, 0, 3, 0xc1, 0xc1, 0xc1})
	if st := c.wait(t); st.Code != 1 {
		t.Fatalf("exit: %v, want exit code 1 (protocol error)", st)
	}
}

func TestWrongFirstMessage(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	c.send(t, &wire.PingRequest{SentAt: 1})
	if st := c.wait(t); st.Code != 1 {
		t.Fatalf("exit: %v, want exit code 1", st)
	}
}

func TestLogRecordsKeepLevelsAttrsAndGroups(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	c.initialize(t, &wire.InitializeRequest{})
	c.send(t, &wire.Message{Kind: "log"})
	lr := wire.NewReader(c.p.Logs(), 0)
	c.p.Logs().SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := lr.Read()
	if err != nil {
		t.Fatal(err)
	}
	rec := m.(*wire.LogRecord)
	if rec.Message != "disk slow" || rec.Level != 4 || rec.Source == nil || !strings.HasSuffix(rec.Source.File, "main_test.go") {
		t.Fatalf("record: %#v", rec)
	}
	var got []string
	for _, a := range rec.Attrs {
		got = append(got, wireslog.ToSlog(a).String())
	}
	if want := "worker=7 job=[ms=250 dev=[name=sda]]"; strings.Join(got, " ") != want {
		t.Fatalf("attrs %q, want %q", strings.Join(got, " "), want)
	}
}

// A record logged through Peer.Log, without slog, is numbered and held to the same
// limits as any: attributes past MaxLogAttrs are counted, not sent.
func TestPeerLogAppliesLimits(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	c.initialize(t, &wire.InitializeRequest{})
	c.send(t, &wire.Message{Kind: "rawlog"})
	c.p.Logs().SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := wire.NewReader(c.p.Logs(), 0).Read()
	if err != nil {
		t.Fatal(err)
	}
	rec := m.(*wire.LogRecord)
	last := rec.Attrs[len(rec.Attrs)-1]
	if rec.Message != "raw" || rec.Seq != 1 || len(rec.Attrs) != childproc.MaxLogAttrs+1 ||
		last.Key != "procsup.attrs_dropped" || last.Value != int64(44) {
		t.Fatalf("record %q seq %d with %d attrs, last %+v; want seq 1, %d attrs and procsup.attrs_dropped=44",
			rec.Message, rec.Seq, len(rec.Attrs), last, childproc.MaxLogAttrs+1)
	}
}

// A child that logs faster than the parent reads never blocks: what does not fit is
// dropped and counted, and every record is either received or counted as dropped.
func TestLogFloodIsBoundedAndCounted(t *testing.T) {
	actortest.CheckLeaks(t)
	const n = 50000
	c := start(t, "flood", "FLOOD_N="+strconv.Itoa(n))
	c.initialize(t, &wire.InitializeRequest{})
	if m, ok := c.recv(t).(*wire.Message); !ok || m.Kind != "done" {
		t.Fatalf("got %#v, want the done message", m)
	}
	// Only now does the parent read the logs.
	c.send(t, &wire.ShutdownRequest{})
	lr := wire.NewReader(c.p.Logs(), 0)
	var received, dropped uint64
	for {
		m, err := lr.Read()
		if errors.Is(err, wire.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		received++
		dropped += m.(*wire.LogRecord).Dropped
	}
	if dropped == 0 || received+dropped != n {
		t.Fatalf("received %d + dropped %d, want some dropped and %d in all", received, dropped, n)
	}
	c.wait(t)
}

func TestCustomLauncher(t *testing.T) {
	actortest.CheckLeaks(t)
	exe, _ := os.Executable()
	launched := false
	l := launch.LauncherFunc(func(ctx context.Context, files launch.Files) (*exec.Cmd, error) {
		launched = true
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childproc.EnvEntry+"=echo")
		if err := files.Apply(cmd); err != nil {
			return nil, err
		}
		return cmd, cmd.Start()
	})
	p, err := launch.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{p: p, r: wire.NewReader(p.Control(), 0), w: wire.NewWriter(p.Control(), 0)}
	defer p.Close()
	c.initialize(t, &wire.InitializeRequest{})
	c.send(t, &wire.ShutdownRequest{})
	if st := c.wait(t); !launched || !st.Success() {
		t.Fatalf("launched %v, exit %v", launched, st)
	}
}

func TestStartErrors(t *testing.T) {
	actortest.CheckLeaks(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	cases := []struct {
		name string
		cmd  *launch.Command
		want error
	}{
		{"missing binary", &launch.Command{Path: filepath.Join(dir, "nope")}, fs.ErrNotExist},
		{"not in PATH", &launch.Command{Path: "procsup-no-such-program"}, exec.ErrNotFound},
		{"not executable", &launch.Command{Path: notExec}, fs.ErrPermission},
		{"no path", &launch.Command{}, launch.ErrBadCommand},
		{"nil command", nil, launch.ErrBadCommand},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := launch.Start(context.Background(), c.cmd)
			if !errors.Is(err, c.want) || p != nil {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var se *launch.StartError
			if c.want != launch.ErrBadCommand && !errors.As(err, &se) {
				t.Fatalf("%T is not a *StartError", err)
			}
		})
	}
	if _, err := launch.Start(context.Background(), nil); !errors.Is(err, launch.ErrBadCommand) {
		t.Fatalf("nil launcher: %v", err)
	}
	if _, err := launch.SelfCommand("unregistered"); !errors.Is(err, launch.ErrBadCommand) {
		t.Fatalf("unregistered entry: %v", err)
	}
}

func TestServeOutsideProcsup(t *testing.T) {
	t.Setenv(childproc.EnvFDs, "")
	os.Unsetenv(childproc.EnvFDs)
	err := childproc.Serve(context.Background(), childproc.HandlerFuncs{})
	if !errors.Is(err, childproc.ErrNotChild) {
		t.Fatalf("got %v, want ErrNotChild", err)
	}
	t.Setenv(childproc.EnvFDs, "banana")
	if err := childproc.Serve(context.Background(), childproc.HandlerFuncs{}); !errors.Is(err, childproc.ErrNotChild) {
		t.Fatalf("got %v, want ErrNotChild", err)
	}
}

// The child inherits descriptors 3 and 4 and nothing else the parent holds: no
// descriptor of the child's names a file or socket open in the parent.
func TestChildInheritsOnlyItsSockets(t *testing.T) {
	actortest.CheckLeaks(t)
	secret, err := os.Create(filepath.Join(t.TempDir(), "parent-only"))
	if err != nil {
		t.Fatal(err)
	}
	defer secret.Close()
	c := start(t, "echo")
	c.initialize(t, &wire.InitializeRequest{})
	parent := fdTargets(t, "self")
	child := fdTargets(t, strconv.Itoa(c.p.Pid()))
	for fd, target := range child {
		if fd == 3 || fd == 4 {
			if !strings.HasPrefix(target, "socket:") {
				t.Errorf("child fd %d is %s, want a socket", fd, target)
			}
			continue
		}
		if strings.HasPrefix(target, "socket:") || target == secret.Name() {
			for pfd, ptarget := range parent {
				if ptarget == target {
					t.Errorf("child fd %d -> %s is the parent's fd %d", fd, target, pfd)
				}
			}
		}
	}
	c.send(t, &wire.ShutdownRequest{})
	c.wait(t)
}

func fdTargets(t *testing.T, pid string) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		out[fd], _ = os.Readlink("/proc/" + pid + "/fd/" + e.Name())
	}
	return out
}

// Children run in their own process group and a group signal reaches them.
func TestProcessGroup(t *testing.T) {
	actortest.CheckLeaks(t)
	c := start(t, "echo")
	c.initialize(t, &wire.InitializeRequest{})
	pgid, err := syscall.Getpgid(c.p.Pid())
	if err != nil || pgid != c.p.Pid() {
		t.Fatalf("pgid %d (%v), want %d", pgid, err, c.p.Pid())
	}
	c.p.SignalGroup(syscall.SIGTERM)
	if st := c.wait(t); st.Signal != syscall.SIGTERM || st.Code != -1 {
		t.Fatalf("exit: %v, want signal terminated", st)
	}
	if err := c.p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal after exit: %v", err)
	}
}

// When a parent is SIGKILLed its child dies too (parent-death signal).
func TestParentDeathKillsChild(t *testing.T) {
	actortest.CheckLeaks(t)
	line := killMiddle(t, "grandparent")
	grandchild, _ := strconv.Atoi(strings.TrimSpace(line))
	within(t, time.Second, "grandchild gone after its parent was killed", func() bool { return !actortest.Alive(grandchild) })
}

// killMiddle starts this test binary as the child entry (with env), initializes it,
// reads the first line it prints (its own child's pid first), checks that pid runs, and
// SIGKILLs the child alone (not its group), waiting until it is reaped; it returns the
// line.
func killMiddle(t *testing.T, entry string, env ...string) string {
	t.Helper()
	cmd, _ := launch.SelfCommand(entry)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	p, err := launch.Start(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := &conn{p: p, r: wire.NewReader(p.Control(), 0), w: wire.NewWriter(p.Control(), 0)}
	c.initialize(t, &wire.InitializeRequest{})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(line, &pid)
	if !actortest.Alive(pid) {
		t.Fatalf("descendant %d not running", pid)
	}
	go io.Copy(io.Discard, pr)
	p.Signal(syscall.SIGKILL) // the middle process alone, not its group
	c.wait(t)
	pw.Close()
	return line
}

// Many children come and go; the parent's descriptors return to where they were and its
// threads do not grow with the number of children.
func TestNoThreadPerChild(t *testing.T) {
	actortest.CheckLeaks(t)
	warm := start(t, "echo") // the starter thread and runtime threads exist from here
	warm.initialize(t, &wire.InitializeRequest{})
	threads := actortest.CountThreads()
	const n = 40
	var cs []*conn
	for range n {
		c := start(t, "echo")
		c.initialize(t, &wire.InitializeRequest{})
		cs = append(cs, c)
	}
	if got := actortest.CountThreads(); got > threads+4 {
		t.Errorf("%d children waited on with %d threads, started with %d", n, got, threads)
	}
	for _, c := range cs {
		c.send(t, &wire.ShutdownRequest{})
	}
	for _, c := range cs {
		if st := c.wait(t); !st.Success() {
			t.Fatalf("exit %v", st)
		}
		c.p.Close()
	}
}
