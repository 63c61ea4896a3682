package messages_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

type failed struct{ pid int }

func (f failed) Error() string  { return "failed" }
func (f failed) FailedPid() int { return f.pid }

// Every event says which actor and which OS process it is about, and reads as one line
// naming the actor.
func TestEventsSayWhatTheyAreAbout(t *testing.T) {
	pid := actor.NewPID("nonhost", "tree/worker")
	pool := actor.NewPID("nonhost", "pool")
	cause := errors.Join(failed{42})
	for _, tc := range []struct {
		ev    messages.Event
		actor *actor.PID
		os    int
	}{
		{&messages.StateChanged{PID: pid, OSPid: 42, From: messages.Starting, To: messages.Initializing}, pid, 42},
		{&messages.HighPing{PID: pid, OSPid: 42, RTT: time.Second, Threshold: time.Millisecond}, pid, 42},
		{&messages.MemoryWarning{PID: pid, OSPid: 42, Bytes: 1 << 30, Figure: "pss", Warn: 1 << 29}, pid, 42},
		{&messages.MemoryLimitExceeded{PID: pid, OSPid: 42, Bytes: 1 << 30, Figure: "rss", Limit: 1 << 29}, pid, 42},
		{&messages.ChildMessage{PID: pid, OSPid: 42, Kind: "progress"}, pid, 42},
		{&messages.Exited{PID: pid, OSPid: 42, Reason: messages.ReasonCrashed, ExitCode: 3}, pid, 42},
		{&messages.Restarting{PID: pid, Attempt: 1, Delay: time.Second, Cause: cause}, pid, 42},
		{&messages.RestartLimit{PID: pid, Failures: 6, Window: time.Minute, Cause: cause}, pid, 42},
		{&messages.PoolEvent{Pool: pool, Kind: messages.PoolReady, Process: pid, OSPid: 42}, pid, 42},
		{&messages.PoolBackoff{Pool: pool, Failures: 2, Delay: time.Second, Cause: errors.New("no pid")}, pool, 0},
	} {
		if !tc.ev.Actor().Equal(tc.actor) || tc.ev.OSProcess() != tc.os {
			t.Errorf("%T: about %v, pid %d; want %v, %d", tc.ev, tc.ev.Actor(), tc.ev.OSProcess(), tc.actor, tc.os)
		}
		if s := tc.ev.String(); !strings.HasPrefix(s, tc.ev.Actor().Id+":") && !strings.HasPrefix(s, "pool:") || strings.Contains(s, "\n") {
			t.Errorf("%T reads %q", tc.ev, s)
		}
	}
}
