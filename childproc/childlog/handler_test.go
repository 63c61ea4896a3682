package childlog_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childlog"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/messages/wire/wireslog"
)

// The test binary is also the child: its Run logs what the tests and the example read.
func TestMain(m *testing.M) {
	childproc.Register("levels", childproc.HandlerFuncs{RunFunc: func(ctx context.Context, p *childproc.Peer) error {
		log := slog.New(childlog.NewHandler(p, slog.LevelWarn).WithLogger("jobs"))
		log.Info("below the level")
		log.With("worker", 7).WithGroup("job").Warn("disk slow", "ms", 250, slog.Group("dev", "name", "sda"))
		log.WithGroup("empty").Error("no attributes")
		<-ctx.Done()
		return nil
	}})
	childproc.Register("hello", childproc.HandlerFuncs{RunFunc: hello})
	childproctest.Main(m)
}

// records starts entry, initializes it, and returns the first n records it logs.
func records(tb testing.TB, entry string, n int) []*wire.LogRecord {
	tb.Helper()
	cmd, err := launch.SelfCommand(entry)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	p, err := launch.Start(context.Background(), cmd)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		p.Kill()
		p.Wait(context.Background())
		p.Close()
	}()
	if err := wire.NewWriter(p.Control(), 0).Write(&wire.InitializeRequest{}); err != nil {
		tb.Fatal(err)
	}
	p.Logs().SetReadDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(p.Logs(), 0)
	var out []*wire.LogRecord
	for len(out) < n {
		m, err := r.Read()
		if err != nil {
			tb.Fatalf("after %d records: %v", len(out), err)
		}
		out = append(out, m.(*wire.LogRecord))
	}
	return out
}

// attrs writes a record's attributes as slog writes them.
func attrs(rec *wire.LogRecord) string {
	var s []string
	for _, a := range rec.Attrs {
		s = append(s, wireslog.ToSlog(a).String())
	}
	return strings.Join(s, " ")
}

// A record below the handler's level never leaves the child; the others keep their
// level, logger name, source, attributes and groups, and are numbered as they were taken.
func TestHandlerLevelsLoggerAndGroups(t *testing.T) {
	actortest.CheckLeaks(t)
	recs := records(t, "levels", 2)
	warn, errRec := recs[0], recs[1]
	if warn.Message != "disk slow" || warn.Level != int(slog.LevelWarn) || warn.Logger != "jobs" || warn.Seq != 1 {
		t.Fatalf("first record: %+v (the Info below the level must not be sent)", warn)
	}
	if warn.Source == nil || !strings.HasSuffix(warn.Source.File, "handler_test.go") {
		t.Fatalf("source: %+v, want this file", warn.Source)
	}
	if got, want := attrs(warn), "worker=7 job=[ms=250 dev=[name=sda]]"; got != want {
		t.Fatalf("attrs %q, want %q", got, want)
	}
	if errRec.Message != "no attributes" || errRec.Level != int(slog.LevelError) || len(errRec.Attrs) != 0 || errRec.Seq != 2 {
		t.Fatalf("second record: %+v (an empty group is dropped, as slog drops it)", errRec)
	}
}
