package httpstatus_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

// benchFleet runs n of the smallest children in a tree named "bench" and returns the
// system and the tree's PID once all run; they are stopped at the end of b. before, when
// not nil, is called with the tree's PID before the tree is spawned.
func benchFleet(b *testing.B, n int, before func(*actor.ActorSystem, *actor.PID)) (*actor.ActorSystem, *actor.PID) {
	b.Helper()
	minimal := childproctest.Build(b, childproctest.Minimal)
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	b.Cleanup(system.Shutdown)
	specs := make([]actors.Spec, n)
	for i := range specs {
		cfg := actors.NewConfig(&launch.Command{Path: minimal})
		cfg.Logger = quiet
		props, err := actors.NewProcess(cfg)
		if err != nil {
			b.Fatal(err)
		}
		specs[i] = actors.Spec{Name: fmt.Sprintf("w%04d", i), Props: props}
	}
	var mu sync.Mutex
	up := map[string]bool{}
	all := make(chan struct{})
	sub := system.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.StateChanged); ok && e.To == messages.Running {
			mu.Lock()
			defer mu.Unlock()
			if up[e.PID.Id] = true; len(up) == n {
				close(all)
			}
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	if before != nil {
		before(system, actor.NewPID(system.Address(), "bench"))
	}
	tree, err := system.Root.SpawnNamed(actors.NewTree(nil, specs...), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		actors.StopAndWait(ctx, system, tree)
	})
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatal("the fleet did not run")
	}
	return system, tree
}

// The handler's routes at a thousand processes: each answer's time (ms/op), with the
// journal holding the fleet's start (about 3,000 events).
func BenchmarkHandlerAt1000Processes(b *testing.B) {
	var srv *httptest.Server
	benchFleet(b, 1000, func(system *actor.ActorSystem, root *actor.PID) {
		status := httpstatus.New(system, root, httpstatus.Options{Timeout: 30 * time.Second})
		srv = httptest.NewServer(status)
		b.Cleanup(func() { srv.Close(); status.Close() })
	})
	for _, r := range []struct{ name, route string }{
		{"page", "/"}, {"page_sorted_by_memory", "/?sort=memory"}, {"status", "/status"},
		{"events", "/events"}, {"process_page", "/process/bench/w0500"},
	} {
		route := r.route
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				res, err := http.Get(srv.URL + route)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %s", route, res.Status)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}

// What keeping the history costs a thousand idle children's parent: its CPU over windows
// of $PROCSUP_IDLE_WINDOW (default 30 s) with the server on, off, off and on, in percent
// of one core; and one sample's CPU time.
func BenchmarkHistoryIdleCPU(b *testing.B) {
	system, tree := benchFleet(b, 1000, nil)
	window := 30 * time.Second
	if v := os.Getenv("PROCSUP_IDLE_WINDOW"); v != "" {
		var err error
		if window, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for b.Loop() {
		var on, off time.Duration
		for _, with := range []bool{true, false, false, true} {
			var s *httpstatus.Server
			if with {
				s = httpstatus.New(system, tree, httpstatus.Options{})
			}
			began := cpu()
			time.Sleep(window) // idle: the measurement is of what runs meanwhile
			used := cpu() - began
			if with {
				s.Close()
				on += used
			} else {
				off += used
			}
		}
		b.ReportMetric(100*float64(on)/float64(2*window), "%core_on")
		b.ReportMetric(100*float64(off)/float64(2*window), "%core_off")
	}
	// One sample of the thousand, alone.
	s := httpstatus.New(system, tree, httpstatus.Options{HistoryInterval: time.Hour})
	defer s.Close()
	began := cpu()
	const samples = 20
	for range samples {
		actors.Snapshot(context.Background(), system, tree)
	}
	b.ReportMetric(float64((cpu()-began)/samples)/1e6, "ms_cpu/sample")
}
