package procsup_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/messages"
)

// slowHandler records like recordingHandler, but takes a while over each record: a
// parent whose logger cannot keep up.
type slowHandler struct {
	*recordingHandler
	delay time.Duration
}

func (h slowHandler) Handle(ctx context.Context, r slog.Record) error {
	time.Sleep(h.delay)
	return h.recordingHandler.Handle(ctx, r)
}

func (h slowHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return slowHandler{h.recordingHandler.WithAttrs(as).(*recordingHandler), h.delay}
}

// A burst far larger than the child's buffer, into a parent whose handler is slow: every
// record is either delivered or counted, and the count is in Exited, Status and a warning.
func TestLogBurstIntoSlowHandlerIsCounted(t *testing.T) {
	rec, ex, got := burstIntoSlowHandler(t, 200*time.Microsecond, 20000)
	if ex.LogsDropped == 0 {
		t.Fatalf("no record dropped: the burst did not outrun the handler (%d delivered)", got)
	}
	warn, ok := rec.find("child log records were lost")
	if !ok || warn["dropped"].Uint64() != ex.LogsDropped {
		t.Fatalf("warning %v (found %v), want dropped=%d", warn, ok, ex.LogsDropped)
	}
}

// The same when the actor is stopped after the burst: the count includes what the child
// still held when it flushed its logs on the way out.
func TestLogBurstCountedWhenTheActorStops(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := workerConfig("healthy", slog.New(slowHandler{rec, 200 * time.Microsecond}))
	cfg.LogRate = 0
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	const n = 20000
	system.Root.Send(pid, &messages.Send{Kind: "log-burst-stay", Body: []byte(strconv.Itoa(n))})
	within(t, 10*time.Second, "the burst under way", func() bool { return rec.count("burst") > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := actors.StopAndWait(ctx, system, pid); err != nil {
		t.Fatal(err)
	}
	ex := exited(probe)
	if got := uint64(rec.count("burst")); got+ex.LogsDropped != n || ex.Reason != messages.ReasonClosed {
		t.Fatalf("%v: %d records delivered + %d counted as dropped, want %d", ex, got, ex.LogsDropped, n)
	}
}

// Zero values arrive as themselves.
func TestLogZeroValuesSurvive(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, workerConfig("healthy", slogWith(rec)), nil)
	running(probe)
	system.Root.Send(pid, &messages.Send{Kind: "log-zeros"})
	within(t, 10*time.Second, "the zeros record", func() bool { return rec.count("zeros") == 1 })
	attrs, _ := rec.find("zeros")
	checks := map[string]func(slog.Value) bool{
		"n":  func(v slog.Value) bool { return v.Kind() == slog.KindInt64 && v.Int64() == 0 },
		"ok": func(v slog.Value) bool { return v.Kind() == slog.KindBool && !v.Bool() },
		"s":  func(v slog.Value) bool { return v.Kind() == slog.KindString && v.String() == "" },
		"d":  func(v slog.Value) bool { return v.Kind() == slog.KindDuration && v.Duration() == 0 },
		"f":  func(v slog.Value) bool { return v.Kind() == slog.KindFloat64 && v.Float64() == 0 },
		"u":  func(v slog.Value) bool { return v.Kind() == slog.KindUint64 && v.Uint64() == 0 },
	}
	for key, ok := range checks {
		if v, found := attrs[key]; !found || !ok(v) {
			t.Errorf("%s arrived as %v (%v)", key, v, v.Kind())
		}
	}
}

// Records the protocol could not carry as they are (groups nested 20 deep, a thousand
// attributes) are flattened and cut by the child, and the child's later records arrive.
func TestOddLogRecordsDoNotHurtTheChild(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, workerConfig("healthy", slogWith(rec)), nil)
	run := running(probe)
	system.Root.Send(pid, &messages.Send{Kind: "log-deep"})
	within(t, 10*time.Second, "the record after the odd ones", func() bool { return rec.count("after the odd records") == 1 })
	many, _ := rec.find("many")
	if n := many["procsup.attrs_dropped"]; n.Int64() != 1000-childproc.MaxLogAttrs {
		t.Errorf("many: procsup.attrs_dropped = %v, want %d", n, 1000-childproc.MaxLogAttrs)
	}
	deep, ok := rec.find("deep")
	if !ok {
		t.Fatal("the deep record did not arrive")
	}
	// Eight levels of groups, then dotted keys.
	v, found := deep["g0"]
	for depth := 1; found && depth < 8; depth++ {
		found = false
		for _, a := range v.Group() {
			if a.Key == "g"+strconv.Itoa(depth) {
				v, found = a.Value, true
			}
		}
	}
	if !found || len(v.Group()) != 1 || v.Group()[0].Key != "g8.g9.g10.g11.g12.g13.g14.g15.g16.g17.g18.g19.leaf" {
		t.Errorf("deep record: %v", deep)
	}
	probe.ExpectNoMessage(0, func(m any) bool { _, ok := m.(*messages.Exited); return ok })
	stillRunning(t, system, pid, run.OSPid)
}

// The keys the parent adds are the parent's: a child's attribute of the same name
// arrives under "child.".
func TestReservedLogKeys(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	probe, pid := spawn(t, system, workerConfig("healthy", slogWith(rec)), nil)
	run := running(probe)
	system.Root.Send(pid, &messages.Send{Kind: "log-reserved"})
	within(t, 10*time.Second, "the record", func() bool { return rec.count("reserved") == 1 })
	attrs, _ := rec.find("reserved")
	if attrs["pid"].Int64() != int64(run.OSPid) || attrs["actor"].String() != pid.Id {
		t.Errorf("parent's keys: pid %v actor %v", attrs["pid"], attrs["actor"])
	}
	if attrs["child.pid"].Int64() != 1 || attrs["child.actor"].String() != "impostor" || attrs["child.msg"].String() != "mine" {
		t.Errorf("child's keys: %v", attrs)
	}
}

// Frames the log socket cannot use (an unknown type, a body that does not decode, a
// control message) are skipped and counted; the child is not killed for them and its
// next record arrives.
func TestUnreadableLogFramesAreSkipped(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := rawConfig("logjunk")
	cfg.Logger = slogWith(rec)
	cfg.PingInterval, cfg.PingTimeout = 0, 0
	cfg.CloseTimeout = 100 * time.Millisecond
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	within(t, 10*time.Second, "the record after the junk", func() bool { return rec.count("still heard") == 1 })
	if st := status(t, system, pid); st.State != messages.Running || st.LogsDropped != 3 {
		t.Fatalf("status %+v, want running with 3 records lost", st)
	}
	system.Root.Send(pid, &messages.Close{})
	if ex := exited(probe); ex.Reason != messages.ReasonClosed || ex.LogsDropped != 3 {
		t.Fatalf("exited: %v, %d lost", ex, ex.LogsDropped)
	}
}

// A burst into a parent whose handler takes 2 ms a record, from a child that returns
// from Run at once: the end does not wait for every record (logs are read for at most a
// while after the exit), but every record is still delivered or counted.
func TestLogBurstIntoAVerySlowHandlerIsCounted(t *testing.T) {
	burstIntoSlowHandler(t, 2*time.Millisecond, 2000)
}

// burstIntoSlowHandler has a child log a burst of n records and return from Run, into a
// handler that takes delay a record, and checks that every record was delivered or
// counted as dropped; it returns the records, the end and how many were delivered.
func burstIntoSlowHandler(t *testing.T, delay time.Duration, n uint64) (*recordingHandler, *messages.Exited, uint64) {
	t.Helper()
	system := newSystem(t)
	rec := newRecorder()
	cfg := workerConfig("healthy", slog.New(slowHandler{rec, delay}))
	cfg.LogRate = 0 // the parent's own cap is tested elsewhere: here every loss is the child's
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	system.Root.Send(pid, &messages.Send{Kind: "log-burst", Body: []byte(strconv.FormatUint(n, 10))})
	ex := exited(probe)
	terminated(probe, pid)
	got := uint64(rec.count("burst"))
	if got+ex.LogsDropped != n {
		t.Fatalf("%d records delivered + %d counted as dropped = %d, want %d", got, ex.LogsDropped, got+ex.LogsDropped, n)
	}
	return rec, ex, got
}
