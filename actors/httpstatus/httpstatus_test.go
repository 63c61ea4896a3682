package httpstatus_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// The test binary is also the workers: "worker" initializes, except while the file
// FAIL_FLAG names exists.
func TestMain(m *testing.M) {
	childproc.Register("worker", childproc.HandlerFuncs{
		InitFunc: func(context.Context, *wire.InitializeRequest) error {
			if f := os.Getenv("FAIL_FLAG"); f != "" {
				if _, err := os.Stat(f); err == nil {
					return errors.New("the flag says fail")
				}
			}
			return nil
		},
	})
	childproc.Register("leak", childproc.HandlerFuncs{
		InitFunc: func(context.Context, *wire.InitializeRequest) error {
			held = make([]byte, leakMB<<20)
			for i := range held {
				held[i] = byte(i) // touched: resident
			}
			return nil
		},
	})
	childproctest.Main(m)
}

// held is what the "leak" worker holds.
var held []byte

func workerProps(t *testing.T, env ...string) *actor.Props {
	t.Helper()
	cmd, err := launch.SelfCommand("worker")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, env...)
	cfg := actors.NewConfig(cmd)
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.PingInterval = 50 * time.Millisecond
	cfg.CloseTimeout = 5 * time.Second
	props, err := actors.NewProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return props
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitFor polls the handler until cond holds of a GET of path.
func waitFor(t *testing.T, srv *httptest.Server, path, what string, cond func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := get(t, srv.URL+path)
		if cond(code, body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET %s is still %d %q", what, path, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A real tree of real children behind the handler: the health check flips to 503 when
// the tree gives up on a child and back when it runs again; the snapshot decodes; the
// metrics parse and count what happened; the page has a row for every process.
func TestHandlerOnARealTree(t *testing.T) {
	actortest.CheckLeaks(t)
	provider, metricsHandler, err := httpstatus.Prometheus()
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }),
		actor.WithMetricProviders(provider))
	t.Cleanup(system.Shutdown)
	flag := filepath.Join(t.TempDir(), "fail")
	os.WriteFile(flag, nil, 0o644)
	strategy := actors.NewStrategy(actors.Backoff{Initial: 10 * time.Millisecond, MaxRestarts: 2, Window: time.Minute})
	tree := system.Root.Spawn(actors.NewTree(strategy,
		actors.Spec{Name: "good", Props: workerProps(t)},
		actors.Spec{Name: "flaky", Props: workerProps(t, "FAIL_FLAG="+flag)},
		actors.Spec{Name: "sub", Props: actors.NewTree(nil, actors.Spec{Name: "inner", Props: workerProps(t)})},
	))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		actors.StopAndWait(ctx, system, tree)
	})
	status := httpstatus.New(system, tree, httpstatus.Options{Metrics: metricsHandler, Timeout: 5 * time.Second})
	defer status.Close()
	srv := httptest.NewServer(status)
	defer srv.Close()

	// The flaky child fails three times in a row: the tree gives up on it.
	unhealthy := waitFor(t, srv, "/healthz", "the restart limit", func(code int, _ string) bool { return code == http.StatusServiceUnavailable })
	if !strings.Contains(unhealthy, "flaky") {
		t.Fatalf("the health check names %q, want the flaky child", unhealthy)
	}

	// The snapshot, as JSON, into its documented type.
	_, body := get(t, srv.URL+"/status")
	var snap messages.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatalf("the snapshot does not decode: %v\n%s", err, body)
	}
	if snap.Kind != "tree" || len(snap.Failed) != 1 || snap.Failed[0] != "flaky" || snap.Counts["running"] != 2 {
		t.Fatalf("snapshot %s", body)
	}
	names := map[string]*messages.Snapshot{}
	snap.Walk(func(s *messages.Snapshot) { names[s.Name] = s })
	for _, n := range []string{"good", "sub", "inner"} {
		if names[n] == nil {
			t.Fatalf("snapshot lacks %s: %s", n, body)
		}
	}
	if p := names["good"].Process; p == nil || p.State != "running" || p.OSPid == 0 || p.Uptime <= 0 {
		t.Fatalf("good: %+v", names["good"])
	}

	// The metrics: Prometheus text that parses, with the counts of what happened.
	_, text := get(t, srv.URL+"/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	count := func(family string, labels map[string]string) float64 {
		f := families[family]
		if f == nil {
			t.Fatalf("no %s in the metrics:\n%s", family, text)
		}
		sum := 0.0
	next:
		for _, m := range f.Metric {
			for k, v := range labels {
				if label(m, k) != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
		return sum
	}
	if n := count("procsup_process_exits_total", map[string]string{"name": "flaky", "reason": "initialization failed"}); n != 3 {
		t.Errorf("flaky's failed initializations: %v, want 3", n)
	}
	if n := count("procsup_process_starts_total", map[string]string{"name": "flaky"}); n != 3 {
		t.Errorf("flaky's starts: %v, want 3", n)
	}
	if n := count("procsup_restart_limit_hits_total", map[string]string{"name": "flaky"}); n != 1 {
		t.Errorf("restart limit hits: %v, want 1", n)
	}
	if n := count("procsup_processes", map[string]string{"state": "running"}); n != 2 {
		t.Errorf("running processes: %v, want 2", n)
	}
	if n := count("procsup_process_init_duration_seconds", map[string]string{"name": "good"}); n != 1 {
		t.Errorf("good's initializations measured: %v, want 1", n)
	}
	for _, m := range families["procsup_process_starts_total"].Metric {
		for _, l := range m.Label {
			if strings.Contains(l.GetName(), "pid") {
				t.Errorf("a metric labelled by pid: %v", m)
			}
		}
	}

	// The page: a row for every process.
	page := renderedPage(t, srv.URL+"/")
	for _, id := range []string{names["good"].ID, names["inner"].ID} {
		if !regexp.MustCompile(`<tr class="process" data-id="` + regexp.QuoteMeta(id) + `"`).MatchString(page) {
			t.Errorf("the page has no row for %s:\n%s", id, page)
		}
	}

	// Fixed: the flag goes, the tree respawns its child, the health comes back.
	os.Remove(flag)
	system.Root.Send(tree, &messages.Respawn{})
	waitFor(t, srv, "/healthz", "health after the respawn", func(code int, _ string) bool { return code == http.StatusOK })
}

// chromiumFlags are the flags of every headless chromium a test runs: a profile of its
// own (no lock shared with another chromium), and nothing started beside the page.
func chromiumFlags(t *testing.T) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--disable-extensions", "--disable-background-networking", "--user-data-dir=" + t.TempDir()}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// renderedPage returns the page as a real headless browser renders it (Debian's
// chromium, where installed), or as served otherwise.
func renderedPage(t *testing.T, url string) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, path, append(chromiumFlags(t), "--dump-dom", url)...).Output()
		if err != nil {
			t.Fatalf("%s --dump-dom: %v", name, err)
		}
		t.Logf("the page rendered by %s", path)
		return string(out)
	}
	t.Log("no chromium here: the page is checked as served")
	_, body := get(t, url)
	return body
}
