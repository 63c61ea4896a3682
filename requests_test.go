package procsup_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages"
)

// Asks and Sends made one after another by one goroutine reach the child in that order,
// whichever way each goes: held while the process initializes, through the actor's
// mailbox, or written on the caller's goroutine while it runs.
func TestAsksAndSendsFromOneGoroutineArriveInOrder(t *testing.T) {
	system := newSystem(t)
	cfg := rawConfig("record")
	cfg.PingInterval, cfg.PingTimeout = 0, 0
	probe, pid := spawn(t, system, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 600
	for i := range n {
		body := []byte(strconv.Itoa(i))
		var err error
		switch i % 4 {
		case 0:
			_, err = actors.Ask(ctx, system, pid, "seq", body)
		case 1:
			err = actors.Send(ctx, system, pid, "seq", body)
		case 2: // through the mailbox, as protoactor code sends it
			system.Root.Send(pid, &messages.Send{Kind: "seq", Body: body})
		case 3:
			_, err = actors.Ask(context.Background(), system, pid, "seq", body)
		}
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i == n/2 {
			running(probe) // the first half went out while it started, the rest while it runs
		}
	}
	got, err := actors.Ask(ctx, system, pid, "arrivals", nil)
	if err != nil {
		t.Fatalf("arrivals: %v", err)
	}
	arrived := strings.Split(string(got), "\n")
	if len(arrived) != n {
		t.Fatalf("%d arrived, want %d", len(arrived), n)
	}
	for i, a := range arrived {
		if a != strconv.Itoa(i) {
			t.Fatalf("arrival %d is %s: out of order (%v...)", i, a, arrived[max(0, i-3):min(n, i+3)])
		}
	}
}

// A child that does not read holds one caller's write, and the other caller waits for
// the writer behind it: each returns when its own ctx ends, not when the write's timeout
// does (an hour here).
func TestAskContextBoundsAWriteTheChildDoesNotTake(t *testing.T) {
	system := newSystem(t)
	cfg := rawConfig("noread")
	cfg.PingInterval, cfg.PingTimeout = 0, 0
	cfg.WriteTimeout = time.Hour
	probe, pid := spawn(t, system, cfg, nil)
	running(probe)
	big := make([]byte, 8<<20) // far more than a socket buffer holds

	first, cancelFirst := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, err := actors.Ask(first, system, pid, "echo", big)
		firstDone <- err
	}()
	second, cancelSecond := context.WithCancel(context.Background())
	secondDone := make(chan error, 1)
	go func() {
		secondDone <- actors.Send(second, system, pid, "big", big)
	}()
	select {
	case err := <-firstDone:
		t.Fatalf("the Ask returned while its write could not go: %v", err)
	case err := <-secondDone:
		t.Fatalf("the Send returned while its write could not go: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancelSecond()
	if err := <-secondDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled Send: %v, want context.Canceled", err)
	}
	cancelFirst()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled Ask: %v, want context.Canceled", err)
	}
	system.Root.Send(pid, &messages.Kill{})
	if ex := exited(probe); ex.Reason != messages.ReasonKilled {
		t.Fatalf("exited: %v", ex)
	}
}

// A request whose write is cut short by its caller's ctx is still written whole: the
// stream stays in step, and the next calls are answered by the same process.
func TestCancelledWriteLeavesNoHalfFrame(t *testing.T) {
	system := newSystem(t)
	cfg := workerConfig("healthy", nil)
	cfg.PingInterval, cfg.PingTimeout = 0, 0
	probe, pid := spawn(t, system, cfg, nil)
	ospid := running(probe).OSPid
	signal(t, ospid, syscall.SIGSTOP) // it reads nothing until SIGCONT
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	for round := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := actors.Ask(ctx, system, pid, "echo", big)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: the cut-short call: %v, want context.DeadlineExceeded", round, err)
		}
	}
	signal(t, ospid, syscall.SIGCONT)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 20 {
		body := []byte("after " + strconv.Itoa(i))
		got, err := actors.Ask(ctx, system, pid, "echo", body)
		if err != nil || string(got) != "echo:"+string(body) {
			t.Fatalf("call %d after the cut-short ones: %q, %v", i, got, err)
		}
	}
	got, err := actors.Ask(ctx, system, pid, "echo", big)
	if err != nil || len(got) != len("echo:")+len(big) || string(got[5:]) != string(big) {
		t.Fatalf("a whole large call after them: %d bytes, %v", len(got), err)
	}
	stillRunning(t, system, pid, ospid)
}
