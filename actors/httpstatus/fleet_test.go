package httpstatus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
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
)

// fleetSize is how many healthy children the fleet test runs beside the three with a
// problem.
const fleetSize = 1000

// leakMB is what the "leak" worker holds, against a warning level of leakWarnMB.
const leakMB, leakWarnMB = 96, 64

// A fleet as an operator meets it: a thousand healthy children and, among them, one that
// crash-loops, one that holds more memory than its warning level and one whose pings are
// slow (it is stopped most of the time). The page's attention list names each, and no
// healthy one in the restarts and memory lists; the healthy group is folded; sorting and
// filters work; the per-process page draws its chart; /events serves a cursor and the
// live feed streams; and chromium's first screen of the page holds the summary and the
// attention list.
func TestFleetPageFindsTheProblemChild(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand children")
	}
	actortest.CheckLeaks(t)
	minimal := childproctest.Build(t, childproctest.Minimal)
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	t.Cleanup(system.Shutdown)

	newProps := func(cfg actors.Config) *actor.Props {
		cfg.Logger = quiet
		p, err := actors.NewProcess(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	healthy := make([]actors.Spec, fleetSize)
	for i := range healthy {
		healthy[i] = actors.Spec{Name: fmt.Sprintf("w%04d", i), Props: newProps(actors.NewConfig(&launch.Command{Path: minimal}))}
	}
	crashy := actors.NewConfig(&launch.Command{Path: "/bin/sh", Args: []string{"-c", "sleep 0.2; echo dying >&2; exit 3"}})
	crashy.Plain, crashy.StderrTail = &actors.PlainConfig{}, 4096
	leak, err := launch.SelfCommand("leak")
	if err != nil {
		t.Fatal(err)
	}
	leaky := actors.NewConfig(leak)
	leaky.MemoryWarnMB, leaky.MemoryLimitMB, leaky.MemorySampleInterval = leakWarnMB, 1024, 200*time.Millisecond
	slow := actors.NewConfig(&launch.Command{Path: minimal})
	slow.PingInterval, slow.HighPingThreshold = 100*time.Millisecond, 50*time.Millisecond

	strategy := actors.NewStrategy(actors.Backoff{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond, MaxRestarts: 1 << 20, Window: time.Minute})
	root := actor.NewPID(system.Address(), "ops")
	status := httpstatus.New(system, root, httpstatus.Options{Timeout: 30 * time.Second, HistoryInterval: time.Second})
	srv := httptest.NewServer(status)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		status.Close()
	})

	// Wait, on the EventStream, until every healthy child runs, the crashy one restarted
	// three times, the leaky one was warned about and the slow one pinged slowly.
	var mu sync.Mutex
	running, restarts, warned, slowPings := map[string]bool{}, 0, false, 0
	ready := make(chan struct{})
	slowPid := make(chan int, 1)
	sub := system.EventStream.Subscribe(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *messages.StateChanged:
			if e.To == messages.Running && strings.HasPrefix(e.PID.Id, "ops/healthy/") {
				running[e.PID.Id] = true
			}
			if e.To == messages.Running && e.PID.Id == "ops/slow" {
				select {
				case slowPid <- e.OSPid:
				default:
				}
			}
		case *messages.Restarting:
			if e.PID.Id == "ops/crashy" {
				restarts++
			}
		case *messages.MemoryWarning:
			warned = warned || e.PID.Id == "ops/leaky"
		case *messages.HighPing:
			if e.PID.Id == "ops/slow" {
				slowPings++
			}
		}
		if len(running) == fleetSize && restarts >= 3 && warned && slowPings >= 3 && ready != nil {
			close(ready)
			ready = nil
		}
	})
	defer system.EventStream.Unsubscribe(sub)
	allReady := ready
	tree, err := system.Root.SpawnNamed(actors.NewTree(strategy,
		actors.Spec{Name: "healthy", Props: actors.NewTree(nil, healthy...)},
		actors.Spec{Name: "crashy", Props: newProps(crashy)},
		actors.Spec{Name: "leaky", Props: newProps(leaky)},
		actors.Spec{Name: "slow", Props: newProps(slow)},
	), "ops")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := actors.StopAndWait(ctx, system, tree); err != nil {
			t.Errorf("stopping the fleet: %v", err)
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			actors.Snapshot(sctx, system, tree).Walk(func(s *messages.Snapshot) {
				if s.Kind != "process" || !strings.HasPrefix(s.ID, "ops/healthy/") {
					t.Logf("after the stop's deadline: %s (%s) %+v %s", s.ID, s.Kind, s.Process, s.Error)
				}
			})
		}
	})

	// The slow child is stopped 1.5 s of every 1.6 s until the test ends: its pings are
	// slower than any a busy machine gives a healthy child.
	stopSlow := make(chan struct{})
	var stopper sync.WaitGroup
	defer func() { close(stopSlow); stopper.Wait() }()
	select {
	case pid := <-slowPid:
		stopper.Go(func() {
			for {
				syscall.Kill(pid, syscall.SIGSTOP)
				select {
				case <-stopSlow:
					syscall.Kill(pid, syscall.SIGCONT)
					return
				case <-time.After(1500 * time.Millisecond):
				}
				syscall.Kill(pid, syscall.SIGCONT)
				select {
				case <-stopSlow:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	case <-time.After(5 * time.Minute):
		t.Fatal("the slow child did not run")
	}
	select {
	case <-allReady:
		t.Log("the fleet runs, with its three problems")
	case <-time.After(5 * time.Minute):
		mu.Lock()
		t.Fatalf("after 5 minutes: %d healthy running, %d restarts, warned %v, %d slow pings", len(running), restarts, warned, slowPings)
	}

	// The page, as chromium renders it.
	page := renderedPage(t, srv.URL+"/")
	section := func(id string) string {
		m := regexp.MustCompile(`(?s)<div id="` + id + `">(.*?)</ul>`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("the page has no %s list:\n%.3000s", id, page)
		}
		return m[1]
	}
	if s := section("attn-restarts"); !strings.Contains(s, "ops/crashy") || strings.Contains(s, "ops/healthy/") {
		t.Errorf("most restarts: %s", s)
	}
	if s := section("attn-memory"); !strings.Contains(s, "ops/leaky") || strings.Contains(s, "ops/healthy/") {
		t.Errorf("memory against its levels: %s", s)
	}
	if s := section("attn-pings"); !strings.Contains(s, `<a href="process/ops/slow">`) {
		t.Errorf("the slowest pings do not name ops/slow: %s", s)
	}
	if s := section("attn-failures"); !strings.Contains(s, "ops/crashy") || !strings.Contains(s, "crashed") {
		t.Errorf("last failures: %s", s)
	}
	if !strings.Contains(page, fmt.Sprintf("<b>%d processes</b>", fleetSize+3)) {
		t.Errorf("the summary does not count %d processes", fleetSize+3)
	}
	if !strings.Contains(page, `<tr class="folded" data-id="ops/healthy">`) || strings.Contains(page, `data-id="ops/healthy/w0000"`) {
		t.Errorf("the healthy group is not folded")
	}

	// Sorting and filters, on the server.
	_, byMemory := get(t, srv.URL+"/?sort=memory")
	rows := regexp.MustCompile(`<tr class="process" data-id="([^"]+)"`).FindAllStringSubmatch(byMemory, -1)
	if len(rows) != fleetSize+3 || rows[0][1] != "ops/leaky" {
		t.Errorf("sorted by memory: %d rows, the first %v", len(rows), rows[:min(1, len(rows))])
	}
	_, filtered := get(t, srv.URL+"/?q=slow&state=running")
	if rows := regexp.MustCompile(`<tr class="process" data-id="([^"]+)"`).FindAllStringSubmatch(filtered, -1); len(rows) != 1 || rows[0][1] != "ops/slow" {
		t.Errorf("filtered by name and state: %v", rows)
	}
	_, group := get(t, srv.URL+"/?group=ops/healthy")
	if n := strings.Count(group, `<tr class="process"`); n != fleetSize {
		t.Errorf("the healthy group unfolded: %d rows, want %d", n, fleetSize)
	}

	// The leaky child's page: its memory over time against its warning level, once the
	// history has two samples of it.
	leakPage := waitFor(t, srv, "/process/ops/leaky", "the leaky child's chart", func(code int, body string) bool {
		return code == http.StatusOK && strings.Contains(body, `<polyline class="series"`)
	})
	if !strings.Contains(leakPage, `<svg id="chart-memory"`) || !strings.Contains(leakPage, `class="level-warn"`) || !strings.Contains(leakPage, "memory_warning") {
		t.Errorf("the leaky child's page lacks its chart's warning level or its warning event:\n%.4000s", leakPage)
	}
	if _, crashPage := get(t, srv.URL+"/process/ops/crashy"); !strings.Contains(crashPage, "dying") {
		t.Errorf("the crashy child's page does not show what it said on stderr")
	}

	// /events with a cursor.
	var first httpstatus.Events
	getJSON(t, srv.URL+"/events?actor=ops/crashy&limit=5", &first)
	if len(first.Events) != 5 || first.Next != first.Events[4].Seq {
		t.Fatalf("the first five of crashy's events: %+v", first)
	}
	var after httpstatus.Events
	getJSON(t, srv.URL+fmt.Sprintf("/events?since=%d", first.Next), &after)
	if len(after.Events) == 0 || after.Events[0].Seq <= first.Next {
		t.Fatalf("events after %d: %+v", first.Next, after.Events[:min(3, len(after.Events))])
	}

	// The live feed over a real HTTP connection: crashy's next ending arrives.
	feedCtx, feedDone := context.WithTimeout(context.Background(), time.Minute)
	defer feedDone()
	req, _ := http.NewRequestWithContext(feedCtx, http.MethodGet, srv.URL+"/events/live?actor=ops/crashy", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("the live feed's type is %q", ct)
	}
	feed := bufio.NewScanner(res.Body)
	var ev httpstatus.Event
	for ev.Type != "exited" {
		if !feed.Scan() {
			t.Fatalf("the live feed ended: %v", feed.Err())
		}
		if data, ok := strings.CutPrefix(feed.Text(), "data: "); ok {
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("a live event does not decode: %v: %s", err, data)
			}
		}
	}
	res.Body.Close()
	if ev.Actor != "ops/crashy" || !ev.Failure || ev.Reason != "crashed" || ev.Seq <= after.Next {
		t.Errorf("the live feed's ending: %+v", ev)
	}

	// The first screen, as chromium draws it: the summary and the attention list are on it.
	shot := screenshot(t, srv.URL+"/", 1280, 800)
	for name, want := range map[string]color.RGBA{"summary": {0xee, 0xf3, 0xfb, 0xff}, "attention": {0xff, 0xf6, 0xe0, 0xff}} {
		if shot != nil && !hasColor(shot, want) {
			t.Errorf("the first screen has no %s (its background %v)", name, want)
		}
	}
}

// screenshot is chromium's picture of url in a window of w×h, nil without chromium. It
// is kept in $PROCSUP_SCREENSHOTS when that names a directory.
func screenshot(t *testing.T, url string, w, h int) image.Image {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Log("no chromium here: no screenshot")
		return nil
	}
	file := filepath.Join(t.TempDir(), "page.png")
	if dir := os.Getenv("PROCSUP_SCREENSHOTS"); dir != "" {
		file = filepath.Join(dir, "fleet-page.png")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append(chromiumFlags(t), "--hide-scrollbars",
		fmt.Sprintf("--window-size=%d,%d", w, h), "--screenshot="+file, url)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// hasColor reports whether a block of at least 200 pixels of c is in img.
func hasColor(img image.Image, c color.RGBA) bool {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(bl>>8) == c.B {
				n++
			}
		}
	}
	return n >= 200
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}
