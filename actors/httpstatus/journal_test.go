package httpstatus

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

func stateChanged(id string) *messages.StateChanged {
	return &messages.StateChanged{PID: actor.NewPID("nonhost", id), From: messages.Starting, To: messages.Running}
}

// The ring keeps the newest events; a cursor older than the oldest kept says so; events
// of other trees and the application's traffic are not kept.
func TestJournalRingAndCursor(t *testing.T) {
	j := newJournal("t", 4)
	j.record(stateChanged("other/x"))                                     // another tree's
	j.record(&messages.ChildMessage{PID: actor.NewPID("nonhost", "t/a")}) // traffic
	j.record(&messages.PoolEvent{Pool: actor.NewPID("nonhost", "t/p"), Kind: messages.PoolAcquired, Process: actor.NewPID("nonhost", "t/p/1")})
	if got := j.latest(); got != 0 {
		t.Fatalf("kept %d events of others and traffic", got)
	}
	for i := range 6 {
		j.record(stateChanged(fmt.Sprintf("t/w%d", i)))
	}
	evs, next, lost, _ := j.since(0, 0, nil)
	if !lost || len(evs) != 4 || evs[0].Seq != 3 || evs[3].Seq != 6 || next != 6 || evs[0].Actor != "t/w2" {
		t.Fatalf("since 0: lost %v, next %d, %+v", lost, next, evs)
	}
	evs, next, lost, _ = j.since(4, 1, nil)
	if lost || len(evs) != 1 || evs[0].Seq != 5 || next != 5 {
		t.Fatalf("since 4, limit 1: lost %v, next %d, %+v", lost, next, evs)
	}
	evs, next, _, arrived := j.since(6, 0, nil)
	if len(evs) != 0 || next != 6 {
		t.Fatalf("since the newest: next %d, %+v", next, evs)
	}
	j.record(stateChanged("t/late"))
	select {
	case <-arrived:
	default:
		t.Fatal("a new event did not wake the feed")
	}
	last := j.last(2, func(e *Event) bool { return e.Actor != "t/w5" })
	if len(last) != 2 || last[0].Actor != "t/late" || last[1].Actor != "t/w4" {
		t.Fatalf("last 2 but w5: %+v", last)
	}
	j.record(&messages.Exited{PID: actor.NewPID("nonhost", "t/c"), Reason: messages.ReasonCrashed})
	j.record(&messages.Exited{PID: actor.NewPID("nonhost", "t/d"), Reason: messages.ReasonClosed})
	evs, _, _, _ = j.since(7, 0, nil)
	if len(evs) != 2 || !evs[0].Failure || evs[1].Failure || evs[0].Reason != "crashed" {
		t.Fatalf("endings: %+v", evs)
	}
}

// An hour of history costs at most 2 KB a process, at the default interval.
func TestHistoryCostsAtMost2KBAProcess(t *testing.T) {
	const procs = 1000
	snap := &messages.Snapshot{ID: "t", Kind: "tree"}
	for i := range procs {
		snap.Children = append(snap.Children, &messages.Snapshot{ID: fmt.Sprintf("t/w%04d", i), Kind: "process",
			Process: &messages.ProcessView{State: "running", OSPid: 100 + i, StartedAt: 1, MemoryBytes: 3 << 20, PingRTT: 0.001}})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := newHistory(DefaultHistoryInterval)
	now := time.Now()
	for i := range int(historyWindow/DefaultHistoryInterval) + 10 {
		for _, c := range snap.Children {
			c.Process.CPU = float64(i) * 0.015 * DefaultHistoryInterval.Seconds() // 1.5% of a core
		}
		h.add(snap, now.Add(time.Duration(i)*DefaultHistoryInterval))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / procs
	t.Logf("history: %.0f bytes a process for %d points", per, h.capPoints)
	if per > 2048 {
		t.Errorf("history costs %.0f bytes a process, more than 2 KB", per)
	}
	if got := h.samples("t/w0007"); len(got) != h.capPoints || got[0].Memory != 3<<20 || got[0].CPU != 1.5 ||
		!got[len(got)-1].Time.After(got[0].Time) {
		t.Fatalf("samples: %d, first %+v", len(got), got[:1])
	}
	runtime.KeepAlive(h)
}
