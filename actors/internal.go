package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/monitor"
)

// Messages between the process actor, its child actors and its timers. Each carries the
// OS pid of the process it is about, so that a late message about an earlier process of
// a restarted actor is recognised and dropped.
type (
	frameIn struct {
		ospid int
		m     messages.Wire
	}
	readFailed struct {
		ospid int
		logs  bool // on the log socket rather than the control socket
		err   error
	}
	processExited struct {
		ospid  int
		status childproc.ExitStatus
	}
	logsDrained   struct{ ospid int }
	initTimedOut  struct{ ospid int }
	closeTimedOut struct{ ospid int }
	logsWaitOver  struct{ ospid int }
	eofGraceOver  struct{ ospid int }
	stackDumpOver struct{ ospid int }
	pingTick      struct{}
	memoryTick    struct{}
	pongIn        struct{ pong *messages.PongResponse }
	highPing      struct{ rtt time.Duration }
	unresponsive  struct{ silence time.Duration }
	memoryWarning struct {
		s      monitor.Sample
		growth uint64
	}
	memoryOverLimit struct{ s monitor.Sample }
)

// sendAfter sends msg to pid after d, from outside any actor; the returned func cancels.
func sendAfter(system *actor.ActorSystem, d time.Duration, pid *actor.PID, msg any) func() {
	t := time.AfterFunc(d, func() { system.Root.Send(pid, msg) })
	return func() { t.Stop() }
}

// monoEpoch anchors the monotonic clock pings are timed on.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }
