package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// recordingInvoker records the system messages that reach the actor.
type recordingInvoker struct{ system []any }

func (r *recordingInvoker) InvokeSystemMessage(m any) { r.system = append(r.system, m) }
func (r *recordingInvoker) InvokeUserMessage(any)     {}
func (r *recordingInvoker) EscalateFailure(any, any)  {}

// A Restart that comes after a Stop never reaches the actor, whether the Stop went
// through or was held (the process actor ending its process first); a Restart alone
// does. protoactor would restart a stopping actor: a strategy's delayed restart of a
// failed child, whose parent began to stop meanwhile, kept it crash-looping forever.
func TestNoRestartAfterAStop(t *testing.T) {
	for _, held := range []bool{false, true} {
		inner := &recordingInvoker{}
		i := &lateInvoker{MessageInvoker: inner}
		if held {
			i.hold = func(_ func(any), sys any) bool { _, stop := sys.(*actor.Stop); return stop }
		}
		i.InvokeSystemMessage(&actor.Restart{})
		i.InvokeSystemMessage(&actor.Stop{})
		i.InvokeSystemMessage(&actor.Restart{})
		want := 2 // the first Restart and the Stop
		if held {
			want = 1 // the first Restart: the Stop is held
		}
		if len(inner.system) != want {
			t.Errorf("held %v: the actor got %#v, want %d messages and no Restart after the Stop", held, inner.system, want)
		}
		if _, ok := inner.system[len(inner.system)-1].(*actor.Restart); ok && !held {
			t.Errorf("a Restart after the Stop reached the actor: %#v", inner.system)
		}
	}
}
