package node_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/nodepb"
	"github.com/procsup/procsup/node"
	"github.com/procsup/procsup/node/nodetest"
)

var benchRound atomic.Int64

// benchNode starts one node process for a benchmark (a new name each round: the last
// round's may not have left yet) and waits until the owner sees it.
func benchNode(b *testing.B, prefix string) (*node.Node, *nodetest.Process) {
	o := owner(b)
	name := fmt.Sprintf("%s-%d", prefix, benchRound.Add(1))
	p := nodetest.StartProcess(b, name, o.MemberAddr())
	deadline := time.Now().Add(wait)
	for len(o.Members()) < 2 || !hasMember(o, name) {
		if time.Now().After(deadline) {
			b.Fatalf("%s did not join", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return o, p
}

func hasMember(o *node.Node, name string) bool {
	for _, m := range o.Members() {
		if m.Name == name {
			return true
		}
	}
	return false
}

// spawnRunning spawns props from the system's root and waits until it runs; on a
// timeout it fails with every event of that actor.
func spawnRunning(b *testing.B, sys *actor.ActorSystem, props *actor.Props) *actor.PID {
	events := make(chan messages.Event, 64)
	sub := sys.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(messages.Event); ok {
			select {
			case events <- e:
			default:
			}
		}
	})
	defer sys.EventStream.Unsubscribe(sub)
	pid := sys.Root.Spawn(props)
	var seen []string
	timeout := time.After(wait)
	for {
		select {
		case e := <-events:
			if !e.Actor().Equal(pid) {
				continue
			}
			seen = append(seen, e.String())
			if sc, ok := e.(*messages.StateChanged); ok && sc.To == messages.Running {
				return pid
			}
		case <-timeout:
			b.Fatalf("%s not running within %v; its events: %q", pid.Id, wait, seen)
		}
	}
}

// BenchmarkRemoteAsk: an Ask through a remote process (this process's node to a node
// process, where the worker runs), against the same Ask through a local process actor
// (x-local) and against protoactor remote's own request and response between the same two
// nodes (x-remote: the floor). A remote Ask is at least both (x-sum: against remote's
// round trip plus the local Ask). Each side runs in blocks of 100, back to back, in turn.
func BenchmarkRemoteAsk(b *testing.B) {
	o, p := benchNode(b, "bench-ask")
	sys := o.System()
	remoteProps, _ := o.NewProcess(node.ProcessConfig{Spec: "echo", Node: p.Name})
	remote := spawnRunning(b, sys, remoteProps)
	defer actors.StopAndWait(context.Background(), sys, remote)
	localProps, _ := actors.NewProcess(workerSpec(b))
	local := spawnRunning(b, sys, localProps)
	defer actors.StopAndWait(context.Background(), sys, local)
	echo := actor.NewPID(p.Remote, "bench-echo")
	ctx := context.Background()
	body := []byte("0123456789abcdef")
	var tRemote, tLocal, tFloor time.Duration
	ask := func(pid *actor.PID) {
		if _, err := actors.Ask(ctx, sys, pid, "echo", body); err != nil {
			b.Fatal(err)
		}
	}
	floor := func() {
		if _, err := sys.Root.RequestFuture(echo, &nodepb.Reply{Body: body}, wait).Result(); err != nil {
			b.Fatal(err)
		}
	}
	for range 100 { // warm every path: connections, endpoints
		ask(remote)
		ask(local)
		floor()
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += 100 {
		n := min(100, b.N-done)
		began := time.Now()
		for range n {
			ask(remote)
		}
		tRemote += time.Since(began)
		b.StopTimer()
		began = time.Now()
		for range n {
			ask(local)
		}
		tLocal += time.Since(began)
		began = time.Now()
		for range n {
			floor()
		}
		tFloor += time.Since(began)
		b.StartTimer()
	}
	b.ReportMetric(float64(tRemote)/float64(tLocal), "x-local")
	b.ReportMetric(float64(tRemote)/float64(tFloor), "x-remote")
	b.ReportMetric(float64(tRemote)/float64(tFloor+tLocal), "x-sum")
	b.ReportMetric(float64(tFloor.Microseconds())/float64(b.N), "remote-us")
	b.ReportMetric(float64(tLocal.Microseconds())/float64(b.N), "local-us")
}

// BenchmarkRemoteSpawnToReady: spawning a remote process pinned to a node process until
// it runs, then stopping it, against the same for a local process actor in turn. ns/op is
// the remote spawn to running; extra-ms is what placing it remotely adds (goal: 5 ms).
func BenchmarkRemoteSpawnToReady(b *testing.B) {
	o, p := benchNode(b, "bench-spawn")
	sys := o.System()
	remoteProps, _ := o.NewProcess(node.ProcessConfig{Spec: "echo", Node: p.Name})
	localProps, _ := actors.NewProcess(workerSpec(b))
	var tRemote, tLocal time.Duration
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		pid := spawnRunning(b, sys, remoteProps)
		tRemote += time.Since(began)
		b.StopTimer()
		actors.StopAndWait(context.Background(), sys, pid)
		began = time.Now()
		pid = spawnRunning(b, sys, localProps)
		tLocal += time.Since(began)
		actors.StopAndWait(context.Background(), sys, pid)
		b.StartTimer()
	}
	b.ReportMetric(float64(tRemote)/float64(tLocal), "x-local")
	b.ReportMetric(float64((tRemote-tLocal).Microseconds())/float64(b.N)/1000, "extra-ms")
}
