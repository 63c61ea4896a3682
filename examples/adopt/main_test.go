package main

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/childproc/childproctest"
)

// The test binary is the example, its supervising program and its workers.
func TestMain(m *testing.M) {
	roles()
	childproctest.Main(m)
}

// The supervising program SIGKILLed, its successor adopts all six workers with their
// pids, restarts none, and every Ask after the adoption is answered.
func TestAdoptsAllSix(t *testing.T) {
	actortest.CheckLeaks(t)
	var out bytes.Buffer
	if err := run(false, 10*time.Second, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	want := regexp.MustCompile(`^RESULT workers=6 adopted=6 same_pids=6 restarted=0 asks_after=[1-9]\d* failed_after=0 gap_ms=\d+\n$`)
	if !want.Match(out.Bytes()) {
		t.Fatalf("got %q", out.String())
	}
}

// Nobody adopts: the keeper ends the six workers after AdoptWithin.
func TestAbandonedWorkersEnd(t *testing.T) {
	actortest.CheckLeaks(t)
	var out bytes.Buffer
	if err := run(true, time.Second, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if !regexp.MustCompile(`^RESULT workers=6 orphans=0 ended_ms=\d+\n$`).Match(out.Bytes()) {
		t.Fatalf("got %q", out.String())
	}
}
