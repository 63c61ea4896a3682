package node_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/node"
	"github.com/procsup/procsup/node/nodetest"
)

// The test binary is also the workers (entry "worker") and the node processes the tests
// start (nodetest).
func TestMain(m *testing.M) {
	childproc.Register("worker", childproc.HandlerFuncs{
		RequestFunc: func(_ context.Context, _ *childproc.Peer, r *wire.Request) ([]byte, error) {
			switch r.Kind {
			case "crash":
				os.Exit(3)
			case "pid":
				return []byte(strconv.Itoa(os.Getpid())), nil
			case "fail":
				return nil, errors.New("no such model")
			}
			return r.Body, nil
		},
	})
	nodetest.RunIfNode(configureNode, partitionClient)
	childproctest.Main(m)
}

const wait = 30 * time.Second // generous: assertions are on events, never on time

func quiet() *slog.Logger {
	if os.Getenv("NODE_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// workerSpec is the spec every test node registers as "echo": this binary's "worker".
func workerSpec(tb testing.TB) actors.Config {
	cmd, err := launch.SelfCommand("worker")
	if err != nil {
		panic(err)
	}
	cfg := actors.NewConfig(cmd)
	cfg.Logger = quiet()
	return cfg
}

var (
	ownerOnce sync.Once
	ownerNode *node.Node
	ownerErr  error
)

// owner is this test process's own node, shared by every test (protoactor's remote sets
// gRPC's global logger when it starts: two remotes started in one process race under
// -race, so the other nodes of a test are node processes). It offers no spec: it owns
// the proxies, the tests' probes watch them, and the workers run on node processes.
func owner(t testing.TB) *node.Node {
	t.Helper()
	ownerOnce.Do(func() {
		ownerNode, ownerErr = node.Start(context.Background(), node.Config{Name: "owner", Logger: quiet()})
	})
	if ownerErr != nil {
		t.Fatal(ownerErr)
	}
	return ownerNode
}

// waitMembers waits until n sees exactly the named live members (itself included).
func waitMembers(t *testing.T, n *node.Node, names ...string) {
	t.Helper()
	want := append([]string(nil), names...)
	sort.Strings(want)
	deadline := time.Now().Add(wait)
	for {
		var got []string
		for _, m := range n.Members() {
			got = append(got, m.Name)
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s sees members %v, want %v", n.Name(), got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func running(pid *actor.PID) func(*messages.StateChanged) bool {
	return func(e *messages.StateChanged) bool { return e.PID.Equal(pid) && e.To == messages.Running }
}

func exitedOf(pid *actor.PID) func(*messages.Exited) bool {
	return func(e *messages.Exited) bool { return e.PID.Equal(pid) }
}

// A remote process is used as a local one: its events come to its parent with its own
// PID, Ask and Status answer through it, errors keep their types, and Close ends the
// worker on the other node and the proxy with it.
func TestRemoteProcessLifecycle(t *testing.T) {
	a := owner(t)
	actortest.CheckLeaks(t)
	b := nodetest.StartProcess(t, "life-b", a.MemberAddr())
	waitMembers(t, a, "owner", b.Name)

	probe := actortest.NewProbe(t, a.System(), nil)
	props, err := a.NewProcess(node.ProcessConfig{Spec: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	proxy := probe.Spawn(props, "remote-echo")
	probe.Watch(proxy)
	up := actortest.ExpectType(probe, wait, running(proxy))
	if up.OSPid == 0 {
		t.Fatalf("running without an OS pid: %v", up)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	body, err := actors.Ask(ctx, a.System(), proxy, "echo", []byte("hello"))
	if err != nil || string(body) != "hello" {
		t.Fatalf("Ask = %q, %v", body, err)
	}
	body, err = actors.Ask(ctx, a.System(), proxy, "pid", nil)
	if err != nil || string(body) != strconv.Itoa(up.OSPid) {
		t.Fatalf("the worker's pid = %q, %v; the event said %d", body, err, up.OSPid)
	}
	_, err = actors.Ask(ctx, a.System(), proxy, "fail", nil)
	var re *messages.RemoteError
	if !errors.As(err, &re) || re.Message != "no such model" {
		t.Fatalf("a failing handler's error = %#v, want a *messages.RemoteError", err)
	}
	probe.Send(proxy, &messages.Send{Kind: "note", Body: []byte("x")}) // one-way; the sender hears it was written
	if r := actortest.ExpectType[*messages.Response](probe, wait); r.Err != nil {
		t.Fatalf("Send = %v", r.Err)
	}
	st, err := actors.Status(ctx, a.System(), proxy)
	if err != nil || st.State != messages.Running || st.OSPid != up.OSPid || st.Node != b.Name {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	probe.Send(proxy, &messages.Close{Reason: "test done"})
	ex := actortest.ExpectType(probe, wait, exitedOf(proxy))
	if ex.Reason != messages.ReasonClosed || ex.OSPid != up.OSPid {
		t.Fatalf("Exited = %v, want closed on request", ex)
	}
	actortest.ExpectType(probe, wait, func(m *actor.Terminated) bool { return m.Who.Equal(proxy) })
	if actortest.Alive(up.OSPid) {
		t.Fatalf("worker %d still alive after its Exited", up.OSPid)
	}
	_, err = actors.Ask(ctx, a.System(), proxy, "echo", nil)
	if !errors.Is(err, actors.ErrNotRunning) {
		t.Fatalf("Ask after the end = %v, want ErrNotRunning", err)
	}
}

// MemberAddr is read while the node publishes its metadata, which rewrites memberlist's
// local node: it stays the same and reads nothing memberlist writes (-race checks).
func TestMemberAddrWhilePublishing(t *testing.T) {
	o := owner(t)
	addr := o.MemberAddr()
	if addr == "" {
		t.Fatal("no membership address")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			node.Publish(o)
			time.Sleep(time.Millisecond) // one publish at a time: they coalesce
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		if got := o.MemberAddr(); got != addr {
			t.Fatalf("MemberAddr changed from %s to %s", addr, got)
		}
	}
}

// A node SIGKILLed and started again on the same name and address is seen as a leave
// and a join: its proxies hear it lost, its load is the new start's.
func TestNodeRestartedOnTheSameAddressIsANewMember(t *testing.T) {
	o := owner(t)
	actortest.CheckLeaks(t)
	events := make(chan any, 64)
	sub := o.System().EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *node.MemberJoined:
			if e.Node == "restart-b" {
				events <- e
			}
		case *node.MemberLost:
			if e.Node == "restart-b" {
				events <- e
			}
		}
	})
	defer o.System().EventStream.Unsubscribe(sub)
	ports := fmt.Sprintf("%s=%d,%d", nodetest.EnvPorts, freePort(t), freePort(t))
	b := nodetest.StartProcess(t, "restart-b", o.MemberAddr(), ports)
	waitMembers(t, o, "owner", b.Name)
	expectMemberEvent[*node.MemberJoined](t, events)
	probe := actortest.NewProbe(t, o.System(), restarting())
	spawnWorkers(t, o, probe, "before", 2, b.Name) // its load rises
	b.Kill()
	again := nodetest.StartProcess(t, "restart-b", o.MemberAddr(), ports)
	if again.Remote != b.Remote {
		t.Fatalf("started again on %s, was %s", again.Remote, b.Remote)
	}
	expectMemberEvent[*node.MemberLost](t, events)
	expectMemberEvent[*node.MemberJoined](t, events)
	deadline := time.Now().Add(wait)
	for {
		var load node.Load
		for _, m := range o.Members() {
			if m.Name == again.Name {
				load = m.Load
			}
		}
		if load.Workers == 0 {
			break // the new start's figure, not the dead one's two workers
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted node's load is still %+v", load)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func expectMemberEvent[T any](t *testing.T, events chan any) T {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev := <-events:
			if e, ok := ev.(T); ok {
				return e
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T within %v", zero, wait)
			return zero
		}
	}
}

// freePort is a TCP port free on 127.0.0.1 (and for UDP too, as membership needs).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
