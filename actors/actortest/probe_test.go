package actortest_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors/actortest"
)

// recordingTB keeps a probe's failure instead of failing the test.
type recordingTB struct {
	failure  string
	cleanups []func()
}

func (*recordingTB) Helper()                        {}
func (r *recordingTB) Errorf(f string, args ...any) { r.failure = fmt.Sprintf(f, args...) }
func (r *recordingTB) Fatalf(f string, args ...any) {
	r.failure = fmt.Sprintf(f, args...)
	panic(r)
}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// A failed expectation names what was awaited and lists everything received.
func TestExpectFailureListsReceived(t *testing.T) {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()
	tb := &recordingTB{}
	probe := actortest.NewProbe(tb, system, nil)
	defer func() {
		for _, f := range tb.cleanups {
			f()
		}
	}()
	system.Root.Send(probe.PID, "first")
	system.Root.Send(probe.PID, 42)
	func() {
		defer func() { recover() }()
		actortest.ExpectType[bool](probe, 100*time.Millisecond)
	}()
	for _, want := range []string{"no bool within 100ms", "string first", "int 42"} {
		if !strings.Contains(tb.failure, want) {
			t.Errorf("failure %q lacks %q", tb.failure, want)
		}
	}
	// What was passed over is still there to expect.
	if got := actortest.ExpectType[int](probe, time.Second); got != 42 {
		t.Fatalf("got %d", got)
	}
}
