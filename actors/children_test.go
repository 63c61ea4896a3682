package actors

import (
	"log/slog"
	"net"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages/wire"
)

// checkOnSend is an actor.Process that runs check on the sender's goroutine, at the
// moment each message is sent: what the receiver could see, at the earliest.
type checkOnSend struct{ check func(msg any) }

func (c checkOnSend) SendUserMessage(_ *actor.PID, msg any) { c.check(msg) }
func (checkOnSend) SendSystemMessage(*actor.PID, any)       {}
func (checkOnSend) Stop(*actor.PID)                         {}

// The process actor finishes an exit at once only if the logs are drained when it looks;
// it looks when the exit or logsDrained arrives. So the drained mark must be set before
// logsDrained is sent, or an exit handled between the two waits out logsWait (2 s).
func TestLogsDrainedOnlyAfterDone(t *testing.T) {
	system := QuietSystem(t)
	done := make(chan struct{})
	sent := make(chan bool, 1)
	owner, _ := system.ProcessRegistry.Add(checkOnSend{func(msg any) {
		if _, ok := msg.(*logsDrained); ok {
			select {
			case <-done:
				sent <- true
			default:
				sent <- false
			}
		}
	}}, "owner")
	t.Cleanup(func() { system.ProcessRegistry.Remove(owner) })
	parent, child := net.Pipe()
	child.Close() // the child is gone: end of stream at a frame boundary
	defer parent.Close()
	a := &logReader{
		socketActor: socketActor{system: system, owner: owner, ospid: 1, conn: parent,
			r: wire.NewReader(parent, 0), log: slog.New(slog.DiscardHandler)},
		done: done,
	}
	a.loop()
	if !<-sent {
		t.Fatal("logsDrained was sent before the logs were marked drained")
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tl := &tail{max: 5}
	for _, w := range []string{"ab", "cd", "efg", "", "0123456789", "x"} {
		tl.Write([]byte(w))
	}
	if got := tl.String(); got != "6789x" {
		t.Fatalf("tail %q, want 6789x", got)
	}
}

// Every message the process actor's children and timers send it names the process it is
// about, so that one about an earlier process of a restarted actor is dropped.
func TestInternalMessagesNameTheirProcess(t *testing.T) {
	for _, m := range []any{&frameIn{}, &readFailed{}, &processExited{}, &logsDrained{}, &initTimedOut{},
		&closeTimedOut{}, &logsWaitOver{}, &eofGraceOver{}, &stackDumpOver{}, &initFailGraceOver{},
		&childNotReading{}, &highPing{}, &unresponsive{}, &memoryWarning{}, &memoryOverLimit{}, &cpuWarning{}, &plainReady{}} {
		if _, ok := m.(aboutProcess); !ok {
			t.Errorf("%T does not say which process it is about", m)
		}
	}
	p := &process{}
	if !p.staleOrNot(&highPing{about: about{42}}) {
		t.Error("a message about a process, before any process: not stale")
	}
}
