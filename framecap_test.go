package procsup_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// The parent accepts 64 MiB, the child its default 16 MiB: each learns the other's cap in
// the handshake, so an Ask over the child's cap fails at once with a typed error that
// names the direction and the limit, and the child lives on.
func TestAskOverTheChildsCapFailsTheAsker(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.MaxFrame = 64 << 20
	probe, pid := spawn(t, system, cfg, nil)
	run := running(probe)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := actors.Ask(ctx, system, pid, "echo", make([]byte, 20<<20))
	var tooLarge *wire.FrameTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Max != wire.DefaultMaxFrame || tooLarge.Direction != "to the child" {
		t.Fatalf("oversized ask: %v, want a FrameTooLargeError to the child with the child's cap", err)
	}
	// A Send with a sender learns the same.
	probe.Send(pid, &messages.Send{Kind: "noop", Body: make([]byte, 20<<20)})
	if r := actortest.ExpectType[*messages.Response](probe, 10*time.Second); !errors.Is(r.Err, wire.ErrFrameTooLarge) {
		t.Fatalf("oversized send: %v", r.Err)
	}
	// Nothing was sent: the child runs on and answers.
	if body, err := actors.Ask(ctx, system, pid, "echo", []byte("x")); err != nil || string(body) != "echo:x" {
		t.Fatalf("ask after: %q %v", body, err)
	}
	stillRunning(t, system, pid, run.OSPid)
}

// The parent accepts 1 MiB: the child's reply, Send, Request and log record over it fail
// on the child's side, the asker gets an error reply, and nothing kills the child.
func TestChildToParentOverTheCap(t *testing.T) {
	system := newSystem(t)
	rec := newRecorder()
	cfg := workerConfig("healthy", slogWith(rec))
	cfg.MaxFrame = 1 << 20
	probe, pid := spawn(t, system, cfg, nil)
	run := running(probe)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	big := []byte(strconv.Itoa(2 << 20))

	_, err := actors.Ask(ctx, system, pid, "big", big)
	var remote *messages.RemoteError
	if !errors.As(err, &remote) || !errors.Is(err, wire.ErrFrameTooLarge) || !strings.Contains(remote.Message, "to the parent") {
		t.Fatalf("oversized reply: %v, want an error reply that matches ErrFrameTooLarge", err)
	}
	for _, kind := range []string{"send-big", "request-big"} {
		_, err := actors.Ask(ctx, system, pid, kind, big)
		if !errors.As(err, &remote) || !strings.Contains(remote.Message, "exceeds the maximum of 1048576") {
			t.Fatalf("%s: %v, want the child's call to fail with the parent's cap", kind, err)
		}
	}
	if _, err := actors.Ask(ctx, system, pid, "log-big", big); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the record after the big one", func() bool { return rec.count("after the big record") == 1 })
	truncated := false
	rec.each(func(r slog.Record) {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "procsup.truncated" && len(r.Message) < 1<<20 {
				truncated = true
			}
			return true
		})
	})
	if !truncated {
		t.Fatal("the big record did not arrive cut short with procsup.truncated")
	}
	stillRunning(t, system, pid, run.OSPid)
}

// A 15 MiB Ask under the cap does not starve liveness: the pings around it are answered,
// no unresponsive kill comes, and the reply arrives. (How late a ping is under bulk is
// BenchmarkPingUnderBulk's figure; the timeout here leaves room for a race build on a
// busy machine, where three 15 MiB round trips can take seconds.)
func TestLargeAskDoesNotStarvePings(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.PingInterval = 20 * time.Millisecond
	cfg.PingTimeout = 10 * time.Second
	probe, pid := spawn(t, system, cfg, nil)
	run := running(probe)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	body := make([]byte, 15<<20)
	for range 3 {
		got, err := actors.Ask(ctx, system, pid, "echo", body)
		if err != nil || len(got) != len(body)+len("echo:") {
			t.Fatalf("15 MiB ask: %d bytes, %v", len(got), err)
		}
	}
	probe.ExpectNoMessage(0, func(m any) bool { _, ok := m.(*messages.Exited); return ok })
	stillRunning(t, system, pid, run.OSPid)
}
