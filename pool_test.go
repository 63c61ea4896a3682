package procsup_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

func newPool(t *testing.T, system *actor.ActorSystem, cfg actors.PoolConfig) (*actortest.Probe, *actor.PID) {
	t.Helper()
	props, err := actors.NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	probe := actortest.NewProbe(t, system, nil)
	pool := probe.Spawn(props, "pool")
	stopAtEnd(t, system, pool)
	return probe, pool
}

func poolEvent(p *actortest.Probe, kind messages.PoolEventKind) *messages.PoolEvent {
	return actortest.ExpectType(p, 10*time.Second, func(e *messages.PoolEvent) bool { return e.Kind == kind })
}

func poolStatus(t *testing.T, system *actor.ActorSystem, pool *actor.PID) *messages.PoolStatus {
	t.Helper()
	res, err := system.Root.RequestFuture(pool, &messages.GetPoolStatus{}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.(*messages.PoolStatus)
}

func acquire(t *testing.T, system *actor.ActorSystem, pool *actor.PID) *actor.PID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := actors.Acquire(ctx, system, pool)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return pid
}

func TestPoolWarmAcquireAndRefill(t *testing.T) {
	system := newSystem(t)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 2, Reuse: true})
	poolEvent(probe, messages.PoolReady)
	poolEvent(probe, messages.PoolReady)
	created := countEvents(probe.Drain(), messages.PoolCreated)
	proc := acquire(t, system, pool)
	if r := ask(t, system, proc, "echo", "pooled"); r.Err != nil || string(r.Body) != "echo:pooled" {
		t.Fatalf("the acquired process: %+v", r)
	}
	acquired := poolEvent(probe, messages.PoolAcquired)
	if !acquired.Process.Equal(proc) {
		t.Fatalf("acquired %v, event says %v", proc, acquired.Process)
	}
	// The warm acquire started nothing; a reusable busy process counts towards the
	// target, since it comes back.
	if created != 2 {
		t.Fatalf("%d processes created before the acquire, want 2", created)
	}
	if st := poolStatus(t, system, pool); st.Idle != 1 || st.Busy != 1 || st.Starting != 0 {
		t.Fatalf("status after the acquire: %+v", st)
	}
	// Reusable: released, it is idle again, and nothing is closed.
	actors.Release(system, pool, proc)
	poolEvent(probe, messages.PoolReleased)
	if st := poolStatus(t, system, pool); st.Idle != 2 || st.Busy != 0 {
		t.Fatalf("status after release: %+v", st)
	}
	if n := countEvents(probe.Drain(), messages.PoolCreated, messages.PoolClosed); n != 0 {
		t.Fatalf("%d processes created or closed around one acquire and release, want none", n)
	}
}

// A reusable pool under steady load starts a process only when a caller waits, and
// closes none: three callers acquiring and releasing in a loop from a pool of two.
func TestPoolReuseUnderSteadyLoadDoesNotChurn(t *testing.T) {
	system := newSystem(t)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 2, Reuse: true})
	poolEvent(probe, messages.PoolReady)
	poolEvent(probe, messages.PoolReady)
	probe.Drain()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for range 200 {
				proc, err := actors.Acquire(ctx, system, pool)
				if err != nil {
					t.Errorf("acquire: %v", err)
					return
				}
				if _, err := actors.Ask(ctx, system, proc, "echo", []byte("x")); err != nil {
					t.Errorf("ask: %v", err)
				}
				actors.Release(system, pool, proc)
			}
		})
	}
	wg.Wait()
	events := probe.Drain()
	created, closed := countEvents(events, messages.PoolCreated), countEvents(events, messages.PoolClosed)
	if created > 1 || closed != 0 {
		t.Fatalf("under steady load the pool created %d processes and closed %d, want at most 1 and none", created, closed)
	}
}

func TestPoolSingleUseClosesReleased(t *testing.T) {
	system := newSystem(t)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 1})
	poolEvent(probe, messages.PoolReady)
	proc := acquire(t, system, pool)
	actors.Release(system, pool, proc)
	closed := poolEvent(probe, messages.PoolClosed)
	if !closed.Process.Equal(proc) {
		t.Fatalf("closed %v, want the released %v", closed.Process, proc)
	}
	if again := acquire(t, system, pool); again.Equal(proc) {
		t.Fatal("a single-use process was handed out twice")
	}
}

func TestPoolNeverHandsOutADeadProcess(t *testing.T) {
	system := newSystem(t)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 1, Reuse: true})
	ready := poolEvent(probe, messages.PoolReady)
	signal(t, ready.OSPid, 9)
	within(t, 5*time.Second, "the killed process dead", func() bool { return !actortest.Alive(ready.OSPid) })
	// Acquire at once: the dead one must not come back, whether or not the pool has
	// heard of its death yet.
	proc := acquire(t, system, pool)
	st := status(t, system, proc)
	if st.OSPid == ready.OSPid || st.State != messages.Running || !actortest.Alive(st.OSPid) {
		t.Fatalf("handed out %+v after killing pid %d", st, ready.OSPid)
	}
	poolEvent(probe, messages.PoolClosed)
}

func TestPoolFailingStartsBackOffAndFailWaiters(t *testing.T) {
	system := newSystem(t)
	// Four starts at once (and more callers than starts): they overlap, so there is
	// always another start under way when one fails.
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("initfail", nil), Target: 4, MaxStarting: 4,
		Backoff: actors.Backoff{Initial: 50 * time.Millisecond, Multiplier: 2, Max: time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := actors.Acquire(ctx, system, pool)
			errs <- err
		}()
	}
	for range 3 {
		// The callers hear of the failing starts, not of their deadline.
		if err := <-errs; !errors.Is(err, actors.ErrStartsFailing) || !errors.Is(err, messages.ReasonInitFailed) {
			t.Fatalf("acquire: %v, want ErrStartsFailing with the init failure", err)
		}
	}
	var delays []time.Duration
	for range 3 {
		delays = append(delays, actortest.ExpectType[*messages.PoolBackoff](probe, 10*time.Second).Delay)
	}
	if !(delays[0] < delays[1] && delays[1] < delays[2]) {
		t.Fatalf("backoff delays %v do not grow", delays)
	}
	if st := poolStatus(t, system, pool); st.Failures < 3 {
		t.Fatalf("status %+v", st)
	}
}

// A member's Terminated is a system message, which the pool's mailbox takes before the
// member's Exited queued ahead of it: the failed start must count all the same (a backoff,
// PoolBackoff) before any replacement starts. The pool is held inside an EventStream
// handler while its member fails and stops, so that both wait in its mailbox.
func TestPoolCountsAFailedStartWhoseStopCameFirst(t *testing.T) {
	system := newSystem(t)
	var (
		mu      sync.Mutex
		order   []string
		held    = make(chan *actor.PID, 1)
		release = make(chan struct{})
		hold    sync.Once
		let     sync.Once
	)
	letGo := func() { let.Do(func() { close(release) }) }
	t.Cleanup(letGo)
	sub := system.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.PoolEvent:
			mu.Lock()
			order = append(order, e.Kind.String())
			mu.Unlock()
			if e.Kind == messages.PoolStarted {
				hold.Do(func() { held <- e.Process; <-release }) // on the pool's goroutine
			}
		case *messages.PoolBackoff:
			mu.Lock()
			order = append(order, "backoff")
			mu.Unlock()
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	probe, _ := newPool(t, system, actors.PoolConfig{Process: workerConfig("initfail", nil), Target: 1, MaxStarting: 1,
		Backoff: actors.Backoff{Initial: time.Second, Max: time.Second}})
	var member *actor.PID
	select {
	case member = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no member started")
	}
	probe.Watch(member)
	actortest.ExpectType(probe, 10*time.Second, func(m *actor.Terminated) bool { return m.Who.Equal(member) })
	letGo() // the member's Exited and Terminated both wait in the pool's mailbox
	actortest.ExpectType[*messages.PoolBackoff](probe, 10*time.Second)
	var got []string
	// The probe may hear of the backoff before the subscriber does.
	within(t, 10*time.Second, "the subscriber's backoff", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got = slices.Clone(order)
		return slices.Contains(got, "backoff")
	})
	created := 0
	for _, k := range got[:slices.Index(got, "backoff")] {
		if k == messages.PoolCreated.String() {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("events %v: %d processes created before the first backoff, want 1 (the failed start counted)", got, created)
	}
}

func TestPoolAcquireRespectsDeadline(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("initslow", nil)
	cfg.InitializeTimeout = time.Minute
	cfg.CloseTimeout = 100 * time.Millisecond
	_, pool := newPool(t, system, actors.PoolConfig{Process: cfg, Target: 0})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := actors.Acquire(ctx, system, pool); !errors.Is(err, actors.ErrAcquireTimeout) {
		t.Fatalf("acquire: %v, want ErrAcquireTimeout", err)
	}
}

func TestPoolDrainLeavesNoProcess(t *testing.T) {
	system := newSystem(t)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 3, Reuse: true})
	var pids []int
	for range 3 {
		pids = append(pids, poolEvent(probe, messages.PoolReady).OSPid)
	}
	acquire(t, system, pool) // busy, never released: the drain timeout closes it
	res, err := system.Root.RequestFuture(pool, &messages.Drain{Timeout: 300 * time.Millisecond}, 10*time.Second).Result()
	if _, ok := res.(*messages.Drained); err != nil || !ok {
		t.Fatalf("drain: %v %v", res, err)
	}
	for _, pid := range pids {
		if actortest.Alive(pid) {
			t.Fatalf("pid %d alive after the drain", pid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := actors.Acquire(ctx, system, pool); !errors.Is(err, actors.ErrPoolDraining) {
		t.Fatalf("acquire after drain: %v", err)
	}
}

func TestPoolSetTarget(t *testing.T) {
	system := newSystem(t)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 1, Reuse: true})
	poolEvent(probe, messages.PoolReady)
	system.Root.Send(pool, &messages.SetTarget{Target: 3})
	poolEvent(probe, messages.PoolReady)
	poolEvent(probe, messages.PoolReady)
	system.Root.Send(pool, &messages.SetTarget{Target: 1})
	poolEvent(probe, messages.PoolClosed)
	poolEvent(probe, messages.PoolClosed)
	if st := poolStatus(t, system, pool); st.Idle != 1 || st.Target != 1 {
		t.Fatalf("status %+v", st)
	}
}

func countEvents(ms []any, kinds ...messages.PoolEventKind) int {
	n := 0
	for _, m := range ms {
		if e, ok := m.(*messages.PoolEvent); ok && slices.Contains(kinds, e.Kind) {
			n++
		}
	}
	return n
}

// Acquire and release in a tight loop, then stop: the pool stops at once. (It used to
// hang: a process actor stopped while initializing started its checks when the late
// InitializeResponse came, and never finished stopping.)
func TestPoolChurnThenStop(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.MemoryWarnMB = actors.DefaultMemoryWarnMB // the memory monitor is the child that was left
	props, err := actors.NewPool(actors.PoolConfig{Process: cfg, Target: 2, Reuse: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := system.Root.Spawn(props)
	for range 300 {
		actors.Release(system, pool, acquire(t, system, pool))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := actors.StopAndWait(ctx, system, pool); err != nil {
		t.Fatal(err)
	}
}

// An answer to Acquire that is not an *Acquired is an error, not a crash.
func TestAcquireFromANonPool(t *testing.T) {
	system := newSystem(t)
	notPool := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*messages.Acquire); ok {
			c.Respond("something else")
		}
	}))
	stopAtEnd(t, system, notPool)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := actors.Acquire(ctx, system, notPool); !errors.Is(err, actors.ErrNotPool) {
		t.Fatalf("acquire from a non-pool: %v, want ErrNotPool", err)
	}
}

// A caller waiting in Acquire when the pool actor stops hears so at once, not at its
// deadline.
func TestPoolStoppingAnswersWaiters(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("initwait", nil)
	cfg.InitializeTimeout = time.Minute
	probe, pool := newPool(t, system, actors.PoolConfig{Process: cfg, Target: 0})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := actors.Acquire(ctx, system, pool)
		errs <- err
	}()
	poolEvent(probe, messages.PoolStarted) // started for the waiting caller, never ready
	if st := poolStatus(t, system, pool); st.Waiting != 1 {
		t.Fatalf("status %+v, want one caller waiting", st)
	}
	system.Root.Stop(pool)
	if err := <-errs; !errors.Is(err, actors.ErrPoolDraining) {
		t.Fatalf("acquire while the pool stops: %v, want ErrPoolDraining", err)
	}
}

// genConfig is a healthy worker of generation gen (its GEN variable).
func genConfig(gen string) actors.Config {
	cfg := workerConfig("healthy", nil)
	cmd := *cfg.Launcher.(*launch.Command)
	cmd.Env = append(append([]string(nil), cmd.Env...), "GEN="+gen)
	cfg.Launcher = &cmd
	return cfg
}

// A rolling replacement of a busy pool under steady Acquire load: no Acquire fails, and
// once a new process has been handed out no old one is.
func TestPoolRollingReplacementUnderLoad(t *testing.T) {
	system := newSystem(t)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: genConfig("1"), Target: 4, Reuse: true, MaxSurge: 2})
	for range 4 {
		poolEvent(probe, messages.PoolReady)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type use struct {
		gen string
		err error
	}
	uses := make(chan use, 100000)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
				proc, err := actors.Acquire(actx, system, pool)
				acancel()
				if err != nil {
					uses <- use{err: err}
					return
				}
				gen, err := actors.Ask(context.Background(), system, proc, "env", []byte("GEN"))
				actors.Release(system, pool, proc)
				uses <- use{gen: string(gen), err: err}
			}
		})
	}
	if err := actors.Rollout(system, pool, genConfig("2")); err != nil {
		t.Fatal(err)
	}
	done := actortest.ExpectType(probe, time.Minute, func(r *messages.Rollout) bool { return r.Kind == messages.RolloutDone })
	cancel()
	wg.Wait()
	close(uses)
	if done.Old != 0 || done.New < 4 {
		t.Fatalf("done: %v", done)
	}
	sawNew, n := false, 0
	for u := range uses {
		n++
		if u.err != nil {
			t.Fatalf("use %d failed during the rollout: %v", n, u.err)
		}
		if u.gen == "2" {
			sawNew = true
		} else if sawNew {
			t.Fatalf("use %d got an old process after a new one was handed out", n)
		}
	}
	if !sawNew || n < 10 {
		t.Fatalf("%d uses, a new process among them: %v", n, sawNew)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	proc, err := actors.Acquire(ctx2, system, pool)
	if err != nil {
		t.Fatal(err)
	}
	if gen, _ := actors.Ask(ctx2, system, proc, "env", []byte("GEN")); string(gen) != "2" {
		t.Fatalf("after the rollout: generation %q", gen)
	}
}

// New processes that fail abort the rollout, whether they fail to start or initialize
// and then crash: the old config stays and serves, and the pool's health names the abort.
func TestPoolRolloutAborts(t *testing.T) {
	for _, c := range []struct {
		mode string
		want messages.Reason
	}{{"initfail", messages.ReasonInitFailed}, {"crash", messages.ReasonCrashed}} {
		t.Run(c.mode, func(t *testing.T) {
			system := newSystem(t)
			probe, pool := newPool(t, system, actors.PoolConfig{Process: genConfig("1"), Target: 2, Reuse: true,
				Backoff: actors.Backoff{Initial: 10 * time.Millisecond}})
			poolEvent(probe, messages.PoolReady)
			poolEvent(probe, messages.PoolReady)
			bad := genConfig("2")
			bad.Launcher.(*launch.Command).Env = append(bad.Launcher.(*launch.Command).Env, "WORKER_MODE="+c.mode)
			if err := actors.Rollout(system, pool, bad); err != nil {
				t.Fatal(err)
			}
			aborted := actortest.ExpectType(probe, time.Minute, func(r *messages.Rollout) bool { return r.Kind == messages.RolloutAborted })
			if !errors.Is(aborted.Err, c.want) {
				t.Fatalf("aborted: %v", aborted)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			problems := actors.Snapshot(ctx, system, pool).Problems()
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "rollout was aborted") }) {
				t.Fatalf("problems after the abort: %v, want the abort among them", problems)
			}
			proc := acquire(t, system, pool)
			if gen, _ := actors.Ask(ctx, system, proc, "env", []byte("GEN")); string(gen) != "1" {
				t.Fatalf("after the abort: generation %q", gen)
			}
		})
	}
}

// A process is recycled after its uses (none serves more than MaxUses plus the jitter),
// and after its age.
func TestPoolRecycles(t *testing.T) {
	for name, cfg := range map[string]actors.PoolConfig{
		"uses": {MaxUses: 5}, "age": {MaxAge: 200 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			system := newSystem(t)
			cfg.Process, cfg.Target, cfg.Reuse = workerConfig("healthy", nil), 1, true
			probe, pool := newPool(t, system, cfg)
			poolEvent(probe, messages.PoolReady)
			uses := map[int]int{}
			for i := 0; ; i++ {
				proc := acquire(t, system, pool)
				uses[status(t, system, proc).OSPid]++
				actors.Release(system, pool, proc)
				if slices.ContainsFunc(probe.Drain(), func(m any) bool {
					e, ok := m.(*messages.PoolEvent)
					return ok && e.Kind == messages.PoolRecycled
				}) {
					break
				}
				if i > 200 {
					t.Fatalf("no process recycled after %d uses: %v", i, uses)
				}
				if name == "age" {
					time.Sleep(20 * time.Millisecond) // let them age: the event under test is the passing of time
				}
			}
			for pid, n := range uses {
				if name == "uses" && n > 6 { // 5 and its 10% of jitter, rounded
					t.Fatalf("pid %d served %d times, over MaxUses", pid, n)
				}
			}
		})
	}
}

// MaxProcesses caps idle, busy and starting together; a high load keeps no idle ones.
func TestPoolCapacity(t *testing.T) {
	system := newSystem(t)
	var load atomic.Value
	load.Store(0.0)
	probe, pool := newPool(t, system, actors.PoolConfig{Process: workerConfig("healthy", nil), Target: 4, Reuse: true,
		MaxProcesses: 2, Load: func() float64 { return load.Load().(float64) }, LoadThreshold: 0.8, LoadInterval: 50 * time.Millisecond})
	poolEvent(probe, messages.PoolReady)
	poolEvent(probe, messages.PoolReady)
	if st := poolStatus(t, system, pool); st.Idle+st.Starting+st.Busy != 2 {
		t.Fatalf("status %+v, want 2 processes at most", st)
	}
	a, b := acquire(t, system, pool), acquire(t, system, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := actors.Acquire(ctx, system, pool); !errors.Is(err, actors.ErrAcquireTimeout) {
		t.Fatalf("a third acquire over the cap: %v", err)
	}
	actors.Release(system, pool, a)
	actors.Release(system, pool, b)
	load.Store(1.0) // busy host: no idle processes kept
	poolEvent(probe, messages.PoolClosed)
	poolEvent(probe, messages.PoolClosed)
	if st := poolStatus(t, system, pool); st.Idle != 0 {
		t.Fatalf("status under load %+v, want no idle process", st)
	}
	load.Store(0.0)
	poolEvent(probe, messages.PoolReady) // back to its target, within the cap
}
