package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/node"
	"github.com/procsup/procsup/node/nodetest"
)

// The partition soak: node processes, each in a network namespace of its own on one
// bridge, a client node asking every worker continuously, and a nemesis that cuts nodes
// off (both ways, one way, the cluster in halves), flaps a link or pauses a node, then
// heals. PROCSUP_PARTITION_SOAK sets how long it runs (by default, and in CI, 60 s of
// nemesis after the start):
//
//	PROCSUP_PARTITION_SOAK=30m go test -run TestPartitionSoak -v -timeout 60m ./node
const envPartitionSoak = "PROCSUP_PARTITION_SOAK"

// envPartitionSeed replays a soak's choices of what to cut and for how long.
const envPartitionSeed = "PROCSUP_PARTITION_SEED"

// envPartitionClient, in a node process, makes it the soak's client: it places that many
// workers and asks each of them continuously (partitionClient).
const envPartitionClient = "PROCSUP_PARTITION_CLIENT"

// The soak's bounds, from the documented defaults: after a heal every node sees every
// other within healBound (the goal is 10 s); a worker runs twice for at most
// duplicateBound (its orphan rule, PingTimeout + 10 s, is the outer bound); every worker
// runs again within runningBound of the convergence.
const (
	healBound      = 30 * time.Second
	duplicateBound = 70 * time.Second
	runningBound   = 60 * time.Second
	askTimeout     = 2 * time.Second
	askEvery       = 10 * time.Millisecond // each worker is asked again this long after an answer
	// longCut outlasts memberlist.DefaultLocalConfig's GossipToTheDeadTime (15 s).
	longCut = 20 * time.Second
)

func TestPartitionSoak(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the partition soak needs root to make network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the partition soak needs iproute2's ip to make network namespaces")
	}
	duration := 60 * time.Second
	if d, err := time.ParseDuration(os.Getenv(envPartitionSoak)); err == nil && d > 0 {
		duration = d
	}
	const nodes, workers = 4, 8
	lab := newNetlab(t, nodes+1) // namespace 0: the client
	procs := make([]*nodetest.Process, nodes+1)
	start := func(i int, join string, env ...string) {
		name := fmt.Sprintf("part-%d", i)
		env = append(env, nodetest.EnvHost+"="+lab.addrs[i], nodetest.EnvViews+"=1")
		procs[i] = nodetest.StartProcessIn(t, lab.ns[i], name, join, env...)
	}
	start(1, "")
	for i := 2; i <= nodes; i++ {
		start(i, procs[1].MemberAddr)
	}
	start(0, procs[1].MemberAddr, envPartitionClient+"="+strconv.Itoa(workers))
	names := make([]string, len(procs))
	for i, p := range procs {
		names[i] = p.Name
	}
	slices.Sort(names)

	w := newWatch(procs[0])
	go w.follow()
	converged := func(what string) time.Duration {
		began := time.Now()
		waitFor(t, healBound, what+": every node sees every other", func() bool {
			for _, p := range procs {
				if !slices.Equal(p.View(), names) {
					return false
				}
			}
			return true
		})
		took := time.Since(began)
		waitFor(t, runningBound, what+": every worker runs exactly once", func() bool {
			if w.onceEach(workers) {
				return true
			}
			if time.Since(began) > runningBound-time.Second {
				t.Logf("workers and their OS pids (+ alive): %s", w.describe())
			}
			return false
		})
		return took
	}
	converged("the start")

	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv(envPartitionSeed), 10, 64); err == nil {
		seed = s
	}
	t.Logf("nemesis seed %d (%s=%d replays its choices)", seed, envPartitionSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var actions []string
	var healMax time.Duration
	end := time.Now().Add(duration)
	for first := true; time.Now().Before(end); first = false {
		k := rng.IntN(nodes + 1) // a worker node, or 0: the client
		hold := time.Duration(3+rng.IntN(6)) * time.Second
		action := rng.IntN(5)
		if first {
			// One cut longer than memberlist's gossip-to-the-dead time: after it, only a
			// join again merges the two sides.
			k, hold, action = 1+rng.IntN(nodes), longCut, 0
		}
		var what string
		switch action {
		case 0:
			what = fmt.Sprintf("cut %s off", procs[k].Name)
			lab.linkDown(k)
			time.Sleep(hold)
			lab.linkUp(k)
		case 1:
			what = fmt.Sprintf("cut %s's outgoing traffic", procs[k].Name)
			lab.blackhole(k, others(k, len(procs)), true)
			time.Sleep(hold)
			lab.blackhole(k, others(k, len(procs)), false)
		case 2:
			a, b := halves(rng, len(procs))
			what = fmt.Sprintf("split %v from %v", a, b)
			lab.split(a, b, true)
			time.Sleep(hold)
			lab.split(a, b, false)
		case 3:
			what = fmt.Sprintf("flap %s's link", procs[k].Name)
			for range int(hold / time.Second) {
				lab.linkDown(k)
				time.Sleep(500 * time.Millisecond)
				lab.linkUp(k)
				time.Sleep(500 * time.Millisecond)
			}
		case 4:
			if k == 0 {
				k = 1 // the client is never paused: its own Asks would outlive their ctx
			}
			what = fmt.Sprintf("pause %s", procs[k].Name)
			procs[k].Pause()
			time.Sleep(hold)
			procs[k].Resume()
		}
		actions = append(actions, fmt.Sprintf("%s for %v", what, hold))
		t.Logf("%s for %v, healed", what, hold)
		healMax = max(healMax, converged(what))
	}

	procs[0].Stop() // the client prints its summary as it stops
	summary := w.summary()
	if summary == nil {
		t.Fatal("the client printed no summary")
	}
	for _, p := range procs[1:] {
		p.Stop()
	}
	leftovers := lab.close()
	if alive := w.alivePids(); len(alive) > 0 {
		leftovers += len(alive)
		t.Errorf("workers still running after the nodes stopped: %v", alive)
	}
	maxDup := w.maxDuplicate()
	fmt.Printf("PARTITION-SOAK duration=%v actions=%d asks=%d answered=%d typed_errors=%d untyped_errors=%d late=%d "+
		"heal_max_ms=%d max_duplicate_ms=%d leftovers=%d\n", duration, len(actions), summary["asks"], summary["ok"],
		summary["typed"], summary["untyped"], summary["late"], healMax.Milliseconds(), maxDup.Milliseconds(), leftovers)
	switch {
	case summary["untyped"] != 0 || summary["late"] != 0:
		t.Errorf("asks with undocumented errors (%d) or answered after their ctx (%d): %v", summary["untyped"], summary["late"], w.complaints())
	case summary["ok"] == 0:
		t.Error("no ask was answered")
	case maxDup > duplicateBound:
		t.Errorf("a worker ran twice for %v, over the bound of %v", maxDup, duplicateBound)
	case leftovers != 0:
		t.Errorf("%d namespaces, links or processes left", leftovers)
	}
}

func others(k, n int) []int {
	var o []int
	for i := range n {
		if i != k {
			o = append(o, i)
		}
	}
	return o
}

// halves splits 0..n-1 in two random non-empty halves.
func halves(rng *rand.Rand, n int) (a, b []int) {
	perm := rng.Perm(n)
	cut := 1 + rng.IntN(n-1)
	a, b = perm[:cut], perm[cut:]
	slices.Sort(a)
	slices.Sort(b)
	return a, b
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watch follows the client's lines: the OS pids of each worker, the complaints, the
// summary; and samples which pids run, to measure how long a worker ran twice.
type watch struct {
	client *nodetest.Process
	mu     sync.Mutex
	pids   map[string][]int // worker -> every OS pid it had, the last one last
	lines  []string         // UNTYPED and LATE lines
	final  map[string]int
	dup    map[string]time.Time // worker -> since when two of its pids run
	maxDup time.Duration
	done   chan struct{}
}

func newWatch(client *nodetest.Process) *watch {
	return &watch{client: client, pids: map[string][]int{}, dup: map[string]time.Time{}, done: make(chan struct{})}
}

func (w *watch) follow() {
	stop := make(chan struct{})
	go func() { // sample the pids every 100 ms
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			w.sample()
		}
	}()
	defer close(w.done)
	defer close(stop)
	for line := range w.client.Lines() {
		f := strings.Fields(line)
		w.mu.Lock()
		switch {
		case len(f) == 3 && f[0] == "WORKER":
			pid, _ := strconv.Atoi(f[2])
			w.pids[f[1]] = append(w.pids[f[1]], pid)
		case len(f) > 0 && f[0] == "CLIENT":
			w.final = map[string]int{}
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				w.final[k], _ = strconv.Atoi(v)
			}
		case len(f) > 0 && (f[0] == "UNTYPED" || f[0] == "LATE"):
			w.lines = append(w.lines, line)
		}
		w.mu.Unlock()
	}
}

func (w *watch) sample() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for name, pids := range w.pids {
		n := 0
		for _, p := range pids {
			if actortest.Alive(p) {
				n++
			}
		}
		since, twice := w.dup[name]
		switch {
		case n > 1 && !twice:
			w.dup[name] = now
		case n > 1:
			w.maxDup = max(w.maxDup, now.Sub(since))
		case twice:
			w.maxDup = max(w.maxDup, now.Sub(since))
			delete(w.dup, name)
		}
	}
}

// onceEach reports whether each of the n workers runs exactly one OS process: its last.
func (w *watch) onceEach(n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pids) != n {
		return false
	}
	for _, pids := range w.pids {
		for i, p := range pids {
			if actortest.Alive(p) != (i == len(pids)-1) {
				return false
			}
		}
	}
	return true
}

// describe lists each worker's OS pids, + for a live one.
func (w *watch) describe() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for name, pids := range w.pids {
		fmt.Fprintf(&b, " %s:", name)
		for _, p := range pids {
			mark := ""
			if actortest.Alive(p) {
				mark = "+"
			}
			fmt.Fprintf(&b, "%d%s,", p, mark)
		}
	}
	return b.String()
}

func (w *watch) alivePids() []int {
	deadline := time.Now().Add(nodetest.Timeout)
	for {
		w.mu.Lock()
		var live []int
		for _, pids := range w.pids {
			for _, p := range pids {
				if actortest.Alive(p) {
					live = append(live, p)
				}
			}
		}
		w.mu.Unlock()
		if len(live) == 0 || time.Now().After(deadline) {
			return live
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *watch) summary() map[string]int {
	select {
	case <-w.done:
	case <-time.After(nodetest.Timeout):
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.final
}

func (w *watch) maxDuplicate() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxDup
}

func (w *watch) complaints() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines[:min(len(w.lines), 10)]...)
}

// partitionClient is the soak's client, in its node process: it places the workers
// (under a tree that restarts them wherever membership allows, for ever) and asks each of
// them continuously, each Ask within askTimeout. It prints "WORKER <name> <ospid>" as each
// runs, "UNTYPED <err>" and "LATE <elapsed>" for each broken promise (the first few), and
// at the end one line: "CLIENT asks= ok= typed= untyped= late=".
func partitionClient(ctx context.Context, n *node.Node, say func(string)) {
	count, _ := strconv.Atoi(os.Getenv(envPartitionClient))
	if count == 0 {
		return
	}
	sys := n.System()
	var specs []actors.Spec
	for i := range count {
		props, err := n.NewProcess(node.ProcessConfig{Spec: "echo"})
		if err != nil {
			say("UNTYPED " + err.Error())
			return
		}
		specs = append(specs, actors.Spec{Name: fmt.Sprintf("w%d", i), Props: props})
	}
	const treeName = "soak"
	sub := sys.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.StateChanged); ok && e.To == messages.Running {
			if name, ok := strings.CutPrefix(e.PID.Id, treeName+"/"); ok {
				say(fmt.Sprintf("WORKER %s %d", name, e.OSPid))
			}
		}
	})
	defer sys.EventStream.Unsubscribe(sub)
	strategy := actors.NewStrategy(actors.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2})
	tree, err := sys.Root.SpawnNamed(actors.NewTree(strategy, specs...), treeName)
	if err != nil {
		say("UNTYPED " + err.Error())
		return
	}
	var asks, ok, typed, untyped, late atomic.Int64
	var complaints atomic.Int64
	complain := func(s string) {
		if complaints.Add(1) <= 20 {
			say(s)
		}
	}
	var wg sync.WaitGroup
	for _, s := range specs {
		pid := actors.ChildPID(tree, s.Name)
		wg.Go(func() {
			for ctx.Err() == nil {
				actx, cancel := context.WithTimeout(ctx, askTimeout)
				began := time.Now()
				_, err := actors.Ask(actx, sys, pid, "echo", []byte("x"))
				took := time.Since(began)
				cancel()
				if ctx.Err() != nil {
					return // the end: not counted
				}
				asks.Add(1)
				switch {
				case err == nil:
					ok.Add(1)
				case documented(err):
					typed.Add(1)
				default:
					untyped.Add(1)
					complain("UNTYPED " + strings.ReplaceAll(err.Error(), "\n", " "))
				}
				if took > askTimeout+time.Second {
					late.Add(1)
					complain(fmt.Sprintf("LATE %v %v", took, err))
				}
				time.Sleep(askEvery) // continuously, but not as a busy loop
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	stop, cancel := context.WithTimeout(context.Background(), nodetest.Timeout)
	defer cancel()
	actors.StopAndWait(stop, sys, tree)
	say(fmt.Sprintf("CLIENT asks=%d ok=%d typed=%d untyped=%d late=%d", asks.Load(), ok.Load(), typed.Load(),
		untyped.Load(), late.Load()))
}

// documented reports whether err is one of the errors documented on actors.Ask.
func documented(err error) bool {
	var re *messages.RemoteError
	var fe *wire.FrameTooLargeError
	return errors.As(err, &re) || errors.As(err, &fe) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, actors.ErrNotRunning) || errors.Is(err, actors.ErrProcessEnded) ||
		errors.Is(err, actors.ErrHeldFull) || errors.Is(err, actors.ErrChildNotReading)
}
