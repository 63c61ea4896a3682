package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/node"
	"github.com/procsup/procsup/node/nodetest"
)

// restarting is the strategy of the tests' probes: restart at once, no limit.
func restarting() actor.SupervisorStrategy {
	return actors.NewStrategy(actors.Backoff{Initial: time.Millisecond, Max: time.Millisecond})
}

// spawnWorkers spawns n remote processes of "echo" under probe and waits for each to run;
// it returns their proxies and their workers' OS pids.
func spawnWorkers(t *testing.T, o *node.Node, probe *actortest.Probe, prefix string, n int, pin string) ([]*actor.PID, []int) {
	t.Helper()
	var pids []*actor.PID
	var os []int
	for i := 0; i < n; i++ {
		props, err := o.NewProcess(node.ProcessConfig{Spec: "echo", Node: pin})
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, probe.Spawn(props, fmt.Sprintf("%s-%d", prefix, i)))
	}
	for _, p := range pids {
		os = append(os, actortest.ExpectType(probe, wait, running(p)).OSPid)
	}
	return pids, os
}

// nodeOf asks a remote process where it runs.
func nodeOf(t *testing.T, o *node.Node, pid *actor.PID) *messages.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := actors.Status(ctx, o.System(), pid)
	if err != nil {
		t.Fatalf("Status of %s: %v", pid.Id, err)
	}
	return st
}

// waitGone waits until none of the OS processes is alive.
func waitGone(t *testing.T, what string, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for _, p := range pids {
		for actortest.Alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: worker %d still alive", what, p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// A worker that crashes is reported to its proxy, which fails with the worker's reason:
// the proxy's strategy restarts it, and the new worker runs. Kill ends it on request.
func TestRemoteCrashRestartedAndKill(t *testing.T) {
	o := owner(t)
	actortest.CheckLeaks(t)
	b := nodetest.StartProcess(t, "crash-b", o.MemberAddr())
	waitMembers(t, o, "owner", b.Name)
	probe := actortest.NewProbe(t, o.System(), restarting())
	proxies, pids := spawnWorkers(t, o, probe, "crashy", 1, "")
	proxy := proxies[0]

	probe.Send(proxy, &messages.Ask{Kind: "crash"})
	ex := actortest.ExpectType(probe, wait, exitedOf(proxy))
	if ex.Reason != messages.ReasonCrashed || ex.ExitCode != 3 || ex.OSPid != pids[0] {
		t.Fatalf("Exited = %v, want crashed with exit code 3", ex)
	}
	actortest.ExpectType(probe, wait, func(r *messages.Restarting) bool {
		var fe *actors.FailureError
		return r.PID.Equal(proxy) && errors.As(r.Cause, &fe) && fe.Reason == messages.ReasonCrashed && fe.ExitCode == 3
	})
	again := actortest.ExpectType(probe, wait, running(proxy))
	if again.OSPid == pids[0] || again.OSPid == 0 {
		t.Fatalf("restarted worker pid %d, the crashed one was %d", again.OSPid, pids[0])
	}
	if st := nodeOf(t, o, proxy); st.Restarts != 1 || st.Node != b.Name {
		t.Fatalf("Status after the restart: %+v", st)
	}

	probe.Send(proxy, &messages.Kill{})
	ex = actortest.ExpectType(probe, wait, func(e *messages.Exited) bool { return e.PID.Equal(proxy) && e.OSPid == again.OSPid })
	if ex.Reason != messages.ReasonKilled || !ex.Killed || ex.Signal != syscall.SIGKILL {
		t.Fatalf("Exited = %v, want killed on request", ex)
	}
	actortest.ExpectType(probe, wait, func(m *actor.Terminated) bool { return m.Who.Equal(proxy) })
	waitGone(t, "after Kill", again.OSPid)
}

// Workers go to the least loaded node, and a node that joins later disturbs no running
// worker: it gets the next ones.
func TestPlacementByLoadAndJoin(t *testing.T) {
	o := owner(t)
	actortest.CheckLeaks(t)
	b := nodetest.StartProcess(t, "place-b", o.MemberAddr())
	c := nodetest.StartProcess(t, "place-c", o.MemberAddr())
	waitMembers(t, o, "owner", b.Name, c.Name)
	probe := actortest.NewProbe(t, o.System(), restarting())
	proxies, pids := spawnWorkers(t, o, probe, "placed", 4, "")
	on := map[string]int{}
	for _, p := range proxies {
		on[nodeOf(t, o, p).Node]++
	}
	if on[b.Name] != 2 || on[c.Name] != 2 {
		t.Fatalf("4 workers on 2 empty nodes went %v, want 2 and 2", on)
	}

	d := nodetest.StartProcess(t, "place-d", o.MemberAddr())
	waitMembers(t, o, "owner", b.Name, c.Name, d.Name)
	more, _ := spawnWorkers(t, o, probe, "later", 2, "")
	for _, p := range more {
		if st := nodeOf(t, o, p); st.Node != d.Name {
			t.Fatalf("a worker placed after %s joined went to %s", d.Name, st.Node)
		}
	}
	for i, p := range proxies {
		if st := nodeOf(t, o, p); st.OSPid != pids[i] || st.State != messages.Running || st.Restarts != 0 {
			t.Fatalf("worker %s after a node joined: %+v (was pid %d)", p.Id, st, pids[i])
		}
	}
	for _, m := range probe.Drain() {
		if e, ok := m.(*messages.Exited); ok {
			t.Fatalf("a worker ended while a node joined: %v", e)
		}
	}
	pinned, _ := spawnWorkers(t, o, probe, "pinned", 1, b.Name)
	if st := nodeOf(t, o, pinned[0]); st.Node != b.Name {
		t.Fatalf("pinned to %s, runs on %s", b.Name, st.Node)
	}
}

// A SIGKILLed node's workers die with it (their parent-death signal), its proxies end
// with ReasonNodeLost, and their strategy places replacements on the live node: every
// worker runs once.
func TestNodeKilled(t *testing.T) {
	o, b, c, probe, proxies, lostProxies, lost := twoNodes(t, "kill")
	b.Kill()
	waitGone(t, "after its node's SIGKILL", lost...)
	for i, p := range lostProxies {
		ex := actortest.ExpectType(probe, wait, exitedOf(p))
		if ex.Reason != messages.ReasonNodeLost || !errors.Is(ex.Err, messages.ReasonNodeLost) || ex.OSPid != lost[i] {
			t.Fatalf("Exited of a worker of the killed node = %v", ex)
		}
		var nl *node.NodeLostError
		if !errors.As(ex.Err, &nl) || nl.Node != b.Name {
			t.Fatalf("Exited.Err = %#v, want a *node.NodeLostError naming %s", ex.Err, b.Name)
		}
	}
	for _, p := range lostProxies {
		up := actortest.ExpectType(probe, wait, func(e *messages.StateChanged) bool {
			return e.PID.Equal(p) && e.To == messages.Running && !slices.Contains(lost, e.OSPid)
		})
		if st := nodeOf(t, o, p); st.Node != c.Name || st.OSPid != up.OSPid {
			t.Fatalf("replacement of %s: %+v", p.Id, st)
		}
	}
	assertOnce(t, o, proxies)
}

// A node paused (SIGSTOP) past the detection time is declared dead: its workers are
// replaced elsewhere. When it runs again (SIGCONT), it kills the stale workers it still
// held, because their owner's lease expired while it was stopped.
func TestNodePausedFenced(t *testing.T) {
	o, b, c, probe, proxies, moved, stale := twoNodes(t, "pause")
	b.Pause()
	resumed := false
	defer func() {
		if !resumed {
			b.Resume()
		}
	}()
	for _, p := range moved {
		ex := actortest.ExpectType(probe, wait, exitedOf(p))
		if ex.Reason != messages.ReasonNodeLost {
			t.Fatalf("Exited of a worker of the paused node = %v", ex)
		}
	}
	for _, p := range moved {
		actortest.ExpectType(probe, wait, func(e *messages.StateChanged) bool {
			return e.PID.Equal(p) && e.To == messages.Running && !slices.Contains(stale, e.OSPid)
		})
	}
	for _, pid := range stale {
		if !actortest.Alive(pid) {
			t.Fatalf("worker %d of the paused node died while it was stopped: the test shows nothing", pid)
		}
	}
	b.Resume()
	resumed = true
	waitGone(t, "after the paused node resumed", stale...)
	assertOnce(t, o, proxies)
	waitMembers(t, o, "owner", b.Name, c.Name) // it comes back as a member
}

// twoNodes starts node processes <prefix>-b and <prefix>-c, places 4 workers on them from
// the owner under a restarting probe, and returns which of them run on b.
func twoNodes(t *testing.T, prefix string) (o *node.Node, b, c *nodetest.Process, probe *actortest.Probe,
	proxies, onB []*actor.PID, onBPids []int) {
	t.Helper()
	o = owner(t)
	actortest.CheckLeaks(t)
	b = nodetest.StartProcess(t, prefix+"-b", o.MemberAddr())
	c = nodetest.StartProcess(t, prefix+"-c", o.MemberAddr())
	waitMembers(t, o, "owner", b.Name, c.Name)
	probe = actortest.NewProbe(t, o.System(), restarting())
	proxies, pids := spawnWorkers(t, o, probe, prefix+"w", 4, "")
	for i, p := range proxies {
		if nodeOf(t, o, p).Node == b.Name {
			onB, onBPids = append(onB, p), append(onBPids, pids[i])
		}
	}
	if len(onB) == 0 {
		t.Fatalf("no worker of 4 on %s", b.Name)
	}
	return o, b, c, probe, proxies, onB, onBPids
}

// assertOnce checks that every proxy's worker runs, each one once: the workers' pids
// are distinct and alive, and answer Asks.
func assertOnce(t *testing.T, o *node.Node, proxies []*actor.PID) {
	t.Helper()
	seen := map[int]string{}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, p := range proxies {
		body, err := actors.Ask(ctx, o.System(), p, "pid", nil)
		if err != nil {
			t.Fatalf("Ask %s: %v", p.Id, err)
		}
		pid, _ := strconv.Atoi(string(body))
		if other, dup := seen[pid]; dup || !actortest.Alive(pid) {
			t.Fatalf("worker %d of %s: alive=%v, also %q's", pid, p.Id, actortest.Alive(pid), other)
		}
		seen[pid] = p.Id
	}
}

// Messages of any size up to the worker's frame cap cross nodes, far over gRPC's default
// 4 MiB; one over the cap fails its caller's own call before anything is sent. Neither
// ends a worker, the asked one or its neighbour on the same node.
func TestLargeMessagesBetweenNodes(t *testing.T) {
	o := owner(t)
	actortest.CheckLeaks(t)
	b := nodetest.StartProcess(t, "large-b", o.MemberAddr())
	waitMembers(t, o, "owner", b.Name)
	probe := actortest.NewProbe(t, o.System(), restarting())
	proxies, pids := spawnWorkers(t, o, probe, "large", 2, b.Name)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	big := make([]byte, 6<<20)
	for i := range big {
		big[i] = byte(i)
	}
	got, err := actors.Ask(ctx, o.System(), proxies[0], "echo", big)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 6 MiB Ask: %d bytes back, %v", len(got), err)
	}
	_, err = actors.Ask(ctx, o.System(), proxies[0], "echo", make([]byte, wire.DefaultMaxFrame+1))
	var fe *wire.FrameTooLargeError
	if !errors.As(err, &fe) || fe.Max != wire.DefaultMaxFrame {
		t.Fatalf("an Ask over the cap: %v, want a *wire.FrameTooLargeError naming the cap", err)
	}
	for i, p := range proxies {
		if st := nodeOf(t, o, p); st.OSPid != pids[i] || st.State != messages.Running {
			t.Fatalf("worker %d after the large messages: %+v (was pid %d)", i, st, pids[i])
		}
	}
	for _, m := range probe.Drain() {
		if e, ok := m.(*messages.Exited); ok {
			t.Fatalf("a worker ended: %v", e)
		}
	}
}
