package actors_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// idleHold is how long BenchmarkIdleChildren holds the children while it measures CPU:
// four default ping intervals, two memory samples. PROCSUP_IDLE_HOLD overrides it, and
// PROCSUP_IDLE_CPUPROFILE names a file for a CPU profile of the hold alone.
func idleHold() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("PROCSUP_IDLE_HOLD")); err == nil {
		return d
	}
	return 10 * time.Second
}

// parentFootprint is what the idle benchmarks measure of this process.
type parentFootprint struct {
	mem        uint64 // heap and stacks in use, bytes
	goroutines int
	threads    int
}

func footprint() parentFootprint {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return parentFootprint{mem: ms.HeapInuse + ms.StackInuse, goroutines: runtime.NumGoroutine(), threads: actortest.CountThreads()}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report holds n children for idleHold and reports the units of issue 5.
func report(b *testing.B, n int, before parentFootprint) {
	held := footprint()
	hold := idleHold()
	if path := os.Getenv("PROCSUP_IDLE_CPUPROFILE"); path != "" {
		// The hold alone, without the spawns and stops around it.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err) // -cpuprofile is on too
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(hold)
	cpu := cpuTime() - cpu0
	wall := time.Since(wall0)
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
	b.ReportMetric(float64(held.mem-min(before.mem, held.mem))/1024/float64(n), "KiB/child")
	b.ReportMetric(float64(held.goroutines-before.goroutines)/float64(n), "goroutines/child")
	b.ReportMetric(float64(actortest.CountThreads()), "threads")
}

// smallChild is the smallest procsup child (childproctest.Minimal, built) with one P:
// what an idle worker looks like.
func smallChild(b *testing.B) *launch.Command {
	return &launch.Command{Path: childproctest.Build(b, childproctest.Minimal), Env: append(os.Environ(), "GOMAXPROCS=1")}
}

// BenchmarkIdleChildren holds n idle supervised children at the default ping and memory
// intervals and reports the parent's CPU, memory per child, goroutines per child,
// threads, and the HighPing events seen while holding (0 expected). Run it alone:
// go test -run '^$' -bench IdleChildren -benchtime 1x ./actors
func BenchmarkIdleChildren(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				idleActors(b, n)
			}
		})
	}
}

func idleActors(b *testing.B, n int) {
	system := actors.QuietSystem(b)
	cfg := echoConfig(b)
	cfg.Launcher = smallChild(b)
	props, err := actors.NewProcess(cfg)
	if err != nil {
		b.Fatal(err)
	}
	before := footprint()
	pids := spawnRunning(system, props, n)
	// Pings go out in batches on the clock's grid; a batch must not stretch round trips
	// past the high-ping threshold.
	var high atomic.Int64
	sub := system.EventStream.Subscribe(func(ev any) {
		if _, ok := ev.(*messages.HighPing); ok {
			high.Add(1)
		}
	})
	report(b, n, before)
	system.EventStream.Unsubscribe(sub)
	b.ReportMetric(float64(high.Load()), "high-pings")
	b.StopTimer()
	stopAll(system, pids)
}

// spawnRunning spawns n process actors of props and waits until all run.
func spawnRunning(system *actor.ActorSystem, props *actor.Props, n int) []*actor.PID {
	running := make(chan struct{}, n)
	sub := system.EventStream.Subscribe(func(ev any) {
		if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
			running <- struct{}{}
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	pids := make([]*actor.PID, n)
	for i := range pids {
		pids[i] = system.Root.Spawn(props)
	}
	for range n {
		<-running
	}
	return pids
}

func stopAll(system *actor.ActorSystem, pids []*actor.PID) {
	var wg sync.WaitGroup
	for _, pid := range pids {
		wg.Go(func() { actors.StopAndWait(context.Background(), system, pid) })
	}
	wg.Wait()
}

// BenchmarkFloorIdleChildren is the floor of BenchmarkIdleChildren: the same children
// started by plain exec, one reader goroutine each, pinged at the same rate by one
// ticker, nothing else.
func BenchmarkFloorIdleChildren(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				idleFloor(b, n)
			}
		})
	}
}

func idleFloor(b *testing.B, n int) {
	raw := childproctest.Build(b, childproctest.RawMinimal)
	before := footprint()
	kids := make([]rawChild, n)
	for i := range kids {
		kids[i] = startRaw(b, raw, "GOMAXPROCS=1") // as smallChild
	}
	var wg sync.WaitGroup
	for _, k := range kids {
		wg.Go(func() { io.Copy(io.Discard, k.conn) }) // the reader
	}
	ping, _ := wire.Encode(&wire.PingRequest{SentAt: 1})
	stop := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(actors.DefaultPingInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, k := range kids {
					k.conn.Write(ping)
				}
			case <-stop:
				return
			}
		}
	})
	report(b, n, before)
	b.StopTimer()
	close(stop)
	for _, k := range kids {
		k.end()
	}
	wg.Wait()
}

// BenchmarkSpawnBurst spawns 200 process actors at once and waits until all run, under
// the default limiter (min(NumCPU, 4) initializations at once). x-floor compares with 200
// raw spawns-to-first-echo at the same concurrency, timed in the same iteration.
func BenchmarkSpawnBurst(b *testing.B) {
	const n = 200
	raw := childproctest.Build(b, childproctest.RawMinimal)
	system := actors.QuietSystem(b)
	props, _ := actors.NewProcess(echoConfig(b))
	running := make(chan struct{}, n)
	sub := system.EventStream.Subscribe(func(ev any) {
		if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
			running <- struct{}{}
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	var bursts, floors time.Duration
	for range b.N {
		began := time.Now()
		pids := make([]*actor.PID, n)
		for i := range pids {
			pids[i] = system.Root.Spawn(props)
		}
		for range n {
			<-running
		}
		bursts += time.Since(began)
		b.StopTimer()
		stopAll(system, pids)
		floors += rawBurst(b, raw, n, min(runtime.NumCPU(), 4))
		b.StartTimer()
	}
	b.ReportMetric(float64(bursts)/float64(floors), "x-floor")
}

// rawBurst spawns n raw children (the program at raw), conc at a time, each until its
// first echo, and returns the time until all have answered.
func rawBurst(b *testing.B, raw string, n, conc int) time.Duration {
	began := time.Now()
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var kids []rawChild
	for range conc {
		wg.Go(func() {
			for range jobs {
				k := startRaw(b, raw)
				k.echo()
				mu.Lock()
				kids = append(kids, k)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	d := time.Since(began)
	for _, k := range kids {
		k.end()
	}
	return d
}

// BenchmarkCrashToExited: the child is SIGKILLed; time until the parent's Exited event.
// p50-ms is the median; floor-p50-ms the median of a raw child's SIGKILL until os/exec
// has reaped it, timed in the same iterations.
func BenchmarkCrashToExited(b *testing.B) {
	raw := childproctest.Build(b, childproctest.RawMinimal)
	system := actors.QuietSystem(b)
	cfg := echoConfig(b)
	cfg.Restart = actors.Permanent
	props, _ := actors.NewProcess(cfg)
	events := make(chan any, 16)
	sub := system.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.Exited:
			events <- e
		case *messages.StateChanged:
			if e.To == messages.Running {
				events <- e
			}
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	strategy := actors.NewStrategy(actors.Backoff{})
	tree := system.Root.Spawn(actors.NewTree(strategy, actors.Spec{Name: "w", Props: props}))
	defer actors.StopAndWait(context.Background(), system, tree)
	var times, floors []time.Duration
	run := (<-events).(*messages.StateChanged)
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		syscall.Kill(run.OSPid, syscall.SIGKILL)
		for ev := range events {
			if _, ok := ev.(*messages.Exited); ok {
				break
			}
		}
		times = append(times, time.Since(began))
		b.StopTimer()
		for ev := range events {
			if sc, ok := ev.(*messages.StateChanged); ok {
				run = sc
				break
			}
		}
		floors = append(floors, killRawOnce(b, raw))
		b.StartTimer()
	}
	b.ReportMetric(median(times).Seconds()*1000, "p50-ms")
	b.ReportMetric(slices.Max(times).Seconds()*1000, "max-ms")
	b.ReportMetric(median(floors).Seconds()*1000, "floor-p50-ms")
}

// BenchmarkCrashToRestarted: the child is SIGKILLed under a zero-backoff strategy; time
// until it runs again. Each iteration also times a raw child's SIGKILL until reaped and a
// raw spawn-to-echo. over-spawn-ms is the median restart less the median raw spawn (the
// goal's measure); over-floor-ms also takes off the median raw kill-to-reaped, leaving
// what procsup adds to a crash and a restart done by hand.
func BenchmarkCrashToRestarted(b *testing.B) {
	raw := childproctest.Build(b, childproctest.RawMinimal)
	system := actors.QuietSystem(b)
	cfg := echoConfig(b)
	cfg.Restart = actors.Permanent
	props, _ := actors.NewProcess(cfg)
	running := make(chan *messages.StateChanged, 16)
	sub := system.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.StateChanged); ok && e.To == messages.Running {
			running <- e
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	tree := system.Root.Spawn(actors.NewTree(actors.NewStrategy(actors.Backoff{}), actors.Spec{Name: "w", Props: props}))
	defer actors.StopAndWait(context.Background(), system, tree)
	run := <-running
	var restarts, spawns, kills []time.Duration
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		syscall.Kill(run.OSPid, syscall.SIGKILL)
		run = <-running
		restarts = append(restarts, time.Since(began))
		b.StopTimer()
		spawns = append(spawns, spawnRawOnce(b, raw))
		kills = append(kills, killRawOnce(b, raw))
		b.StartTimer()
	}
	b.ReportMetric(float64(median(restarts))/float64(median(spawns)+median(kills)), "x-floor")
	b.ReportMetric((median(restarts)-median(spawns)).Seconds()*1000, "over-spawn-ms")
	b.ReportMetric((median(restarts)-median(spawns)-median(kills)).Seconds()*1000, "over-floor-ms")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkCPUSampling holds 1000 idle children four times in one iteration (on, off,
// off, on, so that a drift of the machine falls on both), memory sampled a second (the
// default check, five times as often) every time, CPU sampled with it (CPUWarnPercent
// set) or not; it reports the parent's CPU both ways and what one CPU sample adds. Run
// it alone:
// go test -run '^$' -bench CPUSampling -benchtime 1x ./actors
func BenchmarkCPUSampling(b *testing.B) {
	const n = 1000
	hold := idleHold()
	for range b.N {
		var pct [2]float64
		for _, on := range []bool{true, false, false, true} {
			i := 1
			if on {
				i = 0
			}
			system := actors.QuietSystem(b)
			cfg := echoConfig(b)
			cfg.Launcher = smallChild(b)
			cfg.MemorySampleInterval = time.Second
			if on {
				cfg.CPUWarnPercent = 90
			}
			props, err := actors.NewProcess(cfg)
			if err != nil {
				b.Fatal(err)
			}
			pids := spawnRunning(system, props, n)
			cpu0, wall0 := cpuTime(), time.Now()
			time.Sleep(hold)
			pct[i] += 100 * (cpuTime() - cpu0).Seconds() / time.Since(wall0).Seconds() / 2
			stopAll(system, pids)
		}
		b.ReportMetric(pct[0], "cpu-%-memory+cpu")
		b.ReportMetric(pct[1], "cpu-%-memory")
		// a sample a second per child: the difference per sample, in microseconds
		b.ReportMetric((pct[0]-pct[1])/100*1e6/n, "us/sample")
	}
}

// BenchmarkMetricsIdle holds 1000 idle children four times in one iteration (metrics
// on, off, off, on): on, the actor system has a MeterProvider exporting to Prometheus
// (httpstatus.Prometheus) and the metrics are scraped once a second, as a Prometheus
// server would (more often than the usual 15 s); off, no provider. It reports the
// parent's CPU both ways. Run it alone:
// go test -run '^$' -bench MetricsIdle -benchtime 1x ./actors
func BenchmarkMetricsIdle(b *testing.B) {
	const n = 1000
	hold := idleHold()
	for range b.N {
		var pct [2]float64
		for _, on := range []bool{true, false, false, true} {
			system := actors.QuietSystem(b)
			var scrape func()
			if on {
				provider, h, err := httpstatus.Prometheus()
				if err != nil {
					b.Fatal(err)
				}
				actors.UseMeterProvider(system, provider)
				scrape = func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil)) }
			}
			cfg := echoConfig(b)
			cfg.Launcher = smallChild(b)
			props, err := actors.NewProcess(cfg)
			if err != nil {
				b.Fatal(err)
			}
			pids := spawnRunning(system, props, n)
			cpu0, wall0 := cpuTime(), time.Now()
			for end := time.Now().Add(hold); time.Now().Before(end); {
				time.Sleep(time.Second)
				if scrape != nil {
					scrape()
				}
			}
			i := 1
			if on {
				i = 0
			}
			pct[i] += 100 * (cpuTime() - cpu0).Seconds() / time.Since(wall0).Seconds() / 2
			stopAll(system, pids)
		}
		b.ReportMetric(pct[0], "cpu-%-metrics")
		b.ReportMetric(pct[1], "cpu-%-off")
	}
}
