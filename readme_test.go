package procsup_test

import (
	"bytes"
	"context"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

// readmeSample is the README's "In code" sample, word for word between the markers
// (TestREADMESample checks that the README shows exactly these lines).
func readmeSample(ctx context.Context, img []byte, alert func(*messages.Exited)) ([]byte, error) {
	// README sample begins
	cmd := &launch.Command{Path: "./worker", Args: []string{"-mode", "healthy"}}
	cfg := actors.NewConfig(cmd) // the defaults below
	cfg.MemoryLimitMB = 2000
	cfg.Restart = actors.Transient
	props, err := actors.NewProcess(cfg) // a bad config is an error here, before anything runs
	if err != nil {
		return nil, err
	}
	system := actor.NewActorSystem()
	defer system.Shutdown()
	system.EventStream.Subscribe(func(ev any) {
		e, ok := ev.(messages.Event) // every procsup event, and nothing of protoactor's own
		if !ok {
			return
		}
		log.Print(e) // one line a person can read
		switch e := e.(type) {
		case *messages.Exited:
			if !e.Reason.Requested() { // it crashed, hung, ran out of memory...
				alert(e)
			}
		case *messages.Restarting:
			log.Printf("%s restarts in %v", e.PID.Id, e.Delay)
		}
	})
	strategy := actors.NewStrategy(actors.DefaultBackoff) // exponential backoff, 5 failures a minute
	tree := system.Root.Spawn(actors.NewTree(strategy, actors.Spec{Name: "worker", Props: props}))
	defer actors.StopAndWait(ctx, system, tree) // returns once every process below is reaped
	// Asked at once: the Ask is held until the worker runs, then answered by it.
	reply, err := actors.Ask(ctx, system, actors.ChildPID(tree, "worker"), "resize", img)
	if err != nil {
		return nil, err // one of the typed errors of actors.Ask: errors.Is / errors.As
	}
	// README sample ends
	return reply, nil
}

// The README's sample runs as written, against the example worker built from
// examples/worker, and its Ask, sent the moment the tree is spawned, gets its answer.
func TestREADMESample(t *testing.T) {
	sample := sampleLines(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("```go\n"+sample+"```\n")) {
		t.Fatalf("README.md does not show the sample as readme_test.go runs it:\n%s", sample)
	}

	actortest.CheckLeaks(t)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "worker"), "./examples/worker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the worker: %v\n%s", err, out)
	}
	t.Chdir(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img := []byte("an image")
	var alerts []*messages.Exited
	reply, err := readmeSample(ctx, img, func(e *messages.Exited) { alerts = append(alerts, e) })
	if err != nil || !bytes.Equal(reply, img) {
		t.Fatalf("the sample: %q, %v", reply, err)
	}
	if len(alerts) != 0 {
		t.Fatalf("alerts for a worker closed on request: %v", alerts)
	}
}

// sampleLines returns readmeSample's lines between its markers, unindented once.
func sampleLines(t *testing.T) string {
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	begin := strings.Index(s, "\t// README sample begins\n")
	end := strings.Index(s, "\t// README sample ends\n")
	if begin < 0 || end < begin {
		t.Fatal("no sample markers")
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(s[begin+len("\t// README sample begins\n"):end], "\n") {
		out.WriteString(strings.TrimPrefix(line, "\t"))
	}
	return out.String()
}
