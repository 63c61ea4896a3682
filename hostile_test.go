package procsup_test

import (
	"bufio"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// Each hostile child ends with a clear error and is killed; the parent never panics,
// never blocks its other children, and never allocates for a frame beyond the cap.
func TestHostileChildren(t *testing.T) {
	cases := []struct {
		mode   string
		tune   func(*actors.Config)
		reason messages.Reason
		err    error
	}{
		{mode: "garbage", reason: messages.ReasonProtocolError, err: wire.ErrFrameTooLarge},
		{mode: "hugelength", reason: messages.ReasonProtocolError, err: wire.ErrFrameTooLarge},
		{mode: "wrongfirst", reason: messages.ReasonProtocolError},
		{mode: "wrongtime", reason: messages.ReasonProtocolError},
		{mode: "closesocket", reason: messages.ReasonProtocolError},
		// Half a frame, then silence: the reader waits, the pings go unanswered.
		{mode: "partial", reason: messages.ReasonUnresponsive, tune: func(c *actors.Config) {
			c.PingInterval, c.PingTimeout = 50*time.Millisecond, 300*time.Millisecond
		}},
	}
	system := newSystem(t)
	healthyProbe, healthy := spawn(t, system, workerConfig("healthy", nil), nil)
	running(healthyProbe)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			cfg := rawConfig(c.mode)
			if c.tune != nil {
				c.tune(&cfg)
			}
			probe, pid := spawn(t, system, cfg, nil)
			ex := exited(probe)
			if ex.Reason != c.reason || !ex.Killed || (c.err != nil && !errors.Is(ex.Err, c.err)) {
				t.Fatalf("exited: %v", ex)
			}
			terminated(probe, pid)
			if r := ask(t, system, healthy, "echo", "still here"); r.Err != nil {
				t.Fatalf("the healthy sibling: %+v", r)
			}
		})
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("the parent allocated %d MB facing hostile children (a 2 GB length prefix among them)", grew>>20)
	}
}

// A child that never reads its control socket cannot block the parent: the write fails
// after WriteTimeout and the child is killed for it, while a sibling keeps answering.
func TestChildThatDoesNotRead(t *testing.T) {
	system := newSystem(t)
	healthyProbe, healthy := spawn(t, system, workerConfig("healthy", nil), nil)
	running(healthyProbe)
	cfg := rawConfig("noread")
	cfg.PingInterval, cfg.PingTimeout = 0, 0
	cfg.WriteTimeout = 200 * time.Millisecond
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	big := make([]byte, 1<<20)
	for range 8 { // far more than a socket buffer holds
		system.Root.Send(pid, &messages.Send{Kind: "blob", Body: big})
	}
	if r := ask(t, system, healthy, "echo", "unblocked"); r.Err != nil {
		t.Fatalf("the healthy sibling while the other is stuck: %+v", r)
	}
	ex := exited(probe)
	if ex.Reason != messages.ReasonProtocolError || !ex.Killed || !errors.Is(ex.Err, actors.ErrChildNotReading) {
		t.Fatalf("exited: %v", ex)
	}
}

// A child flooding its logs is cut to LogRate records a second in the parent's log,
// with a count of what was dropped.
func TestLogFloodIsRateLimited(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := workerConfig("logflood", slogWith(rec))
	cfg.LogRate = 100
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	began := time.Now()
	within(t, 5*time.Second, "a warning counting dropped records", func() bool {
		_, ok := rec.find("dropped child log records over the rate limit")
		return ok
	})
	time.Sleep(500 * time.Millisecond) // let the flood run on: the cap is per second
	system.Root.Send(pid, &messages.Close{})
	terminated(probe, pid)
	elapsed := time.Since(began)
	n := rec.count("flood")
	if limit := int(100*elapsed.Seconds()) + 100 + 20; n == 0 || n > limit {
		t.Fatalf("%d flood records in %v at 100/s (limit %d)", n, elapsed, limit)
	}
}

// The channel is the socket pair and nothing else: the parent holds no listening
// socket, TCP or Unix, and no socket with a filesystem path.
func TestNoListenerAnywhere(t *testing.T) {
	system := newSystem(t)
	probe, _ := spawn(t, system, workerConfig("healthy", nil), nil)
	running(probe)
	mine := map[string]bool{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(target, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	if len(mine) == 0 {
		t.Fatal("no sockets found: the check would prove nothing")
	}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		for _, f := range procTable(table) {
			if len(f) > 9 && mine[f[9]] && f[3] == "0A" {
				t.Errorf("a TCP listener of ours in %s: %v", table, f)
			}
		}
	}
	for _, f := range procTable("/proc/self/net/unix") {
		if len(f) > 6 && mine[f[6]] && (len(f) > 7 || f[3] == "00010000") {
			t.Errorf("a Unix socket of ours with a path or listening: %v", f)
		}
	}
}

func procTable(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		rows = append(rows, strings.Fields(sc.Text()))
	}
	return rows
}
