package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
	"github.com/procsup/procsup/monitor"
)

// Messages between the process actor, its child actors and its timers. Each carries the
// OS pid of the process it is about, so that a late message about an earlier process of
// a restarted actor is recognised and dropped.
type (
	// about is embedded in every message about one process: it carries that process's
	// OS pid.
	about struct{ ospid int }

	frameIn struct {
		about
		m wire.Wire
	}
	readFailed struct {
		about
		logs bool // on the log socket rather than the control socket
		err  error
	}
	processExited struct {
		about
		status launch.ExitStatus
	}
	logsDrained       struct{ about }
	initTimedOut      struct{ about }
	plainReady        struct{ about } // a plain program's readiness check passed
	closeTimedOut     struct{ about }
	logsWaitOver      struct{ about }
	eofGraceOver      struct{ about }
	stackDumpOver     struct{ about }
	initFailGraceOver struct{ about }

	childNotReading struct{ about }
	highPing        struct {
		about
		rtt time.Duration
	}
	unresponsive struct {
		about
		silence time.Duration
	}
	memoryWarning struct {
		about
		s      monitor.Sample
		growth uint64
	}
	memoryOverLimit struct {
		about
		s monitor.Sample
	}
	cpuWarning struct {
		about
		percent float64
		above   time.Duration
		cpu     time.Duration
	}

	slotGranted struct{ owner *process } // the limiter's grant, to the instance that asked
	pingTick    struct{}                 // to the pinger, from its own timer
	monitorTick struct{}                 // to the monitor, from its own timer
)

func (a about) aboutPid() int { return a.ospid }

// aboutProcess is a message about one process.
type aboutProcess interface{ aboutPid() int }

// sendAfter sends msg to pid after d, from outside any actor; the returned func cancels.
func sendAfter(system *actor.ActorSystem, d time.Duration, pid *actor.PID, msg any) func() {
	t := time.AfterFunc(d, func() { system.Root.Send(pid, msg) })
	return func() { t.Stop() }
}

// monoEpoch anchors the monotonic clock pings are timed on.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }
