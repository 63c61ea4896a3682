package reply

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func quietSystem(t *testing.T) *actor.ActorSystem {
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	t.Cleanup(system.Shutdown)
	return system
}

// A request's answer reaches it through the registry, as any actor's reply does; a
// request that ended (answered, or its ctx done) is closed, and an answer that comes
// after that is dropped.
func TestRequestAnswersOpenSendersOnly(t *testing.T) {
	system := quietSystem(t)
	held := make(chan *actor.PID, 1)
	pid := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(string); ok {
			if m == "hold" {
				held <- ctx.Sender()
				return
			}
			ctx.Respond(m + "!")
		}
	}))
	t.Cleanup(func() { system.Root.Stop(pid) })
	for range 3 {
		if res, err := Request(context.Background(), system, pid, "echo"); res != "echo!" || err != nil {
			t.Fatalf("request: %v, %v; want echo!", res, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Request(ctx, system, pid, "hold"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request never answered: %v, want DeadlineExceeded", err)
	}
	if n := Of(system).Len(); n != 0 {
		t.Fatalf("%d senders open after every request returned", n)
	}
	system.Root.Send(<-held, "too late") // dropped
	if res, err := Request(context.Background(), system, pid, "next"); res != "next!" || err != nil {
		t.Fatalf("the request after a late answer: %v, %v; want next!", res, err)
	}
}

// A sender gets its first answer only, and Close reports whether one came.
func TestRegistryFirstAnswerOnly(t *testing.T) {
	system := quietSystem(t)
	r := Of(system)
	got := make(chan any, 3)
	sender := r.Open(func(m any) { got <- m })
	system.Root.Send(sender, "first")
	system.Root.Send(sender, "second")
	if m := <-got; m != "first" {
		t.Fatalf("got %v, want first", m)
	}
	if r.Close(sender) {
		t.Fatal("Close says no answer came")
	}
	open := r.Open(func(any) {})
	if !r.Close(open) {
		t.Fatal("Close of an unanswered sender says it was answered")
	}
	select {
	case m := <-got:
		t.Fatalf("a second answer came through: %v", m)
	default:
	}
}

func lentWaker(t *testing.T) *Waker {
	t.Helper()
	w := NewWaker()
	t.Cleanup(w.Close)
	if !w.Lend() {
		t.Fatal("a new Waker could not be lent")
	}
	return w
}

// A waiter is woken by the answer put in its slot and signalled, as many times as it
// waits, whichever comes first: the waiter or the answer.
func TestWakerWakesItsWaiter(t *testing.T) {
	w := lentWaker(t)
	if w.Lend() {
		t.Fatal("a Waker lent twice at once")
	}
	for i := range 100 {
		s := NewSlot()
		go func() {
			s.Put(i)
			w.Signal()
		}()
		if res, err := w.Wait(context.Background(), s); res != i || err != nil {
			t.Fatalf("wait %d: %v, %v", i, res, err)
		}
	}
}

// A wait ends with its ctx; the deadline that ended it is cleared for the next waiter,
// which waits for its answer.
func TestWakerWaitEndsWithCtx(t *testing.T) {
	w := lentWaker(t)
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	if res, err := w.Wait(ctx, NewSlot()); res != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait: %v, %v", res, err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	s := NewSlot()
	go func() {
		s.Put("answer")
		w.Signal()
	}()
	if res, err := w.Wait(ctx, s); res != "answer" || err != nil {
		t.Fatalf("the next wait: %v, %v", res, err)
	}
}

// A waiter whose Waker is closed under it waits on its slot, and a closed Waker is not
// lent again.
func TestWakerClosedUnderAWaiter(t *testing.T) {
	w := lentWaker(t)
	s := NewSlot()
	go func() {
		w.Close()
		s.Put("answer")
	}()
	if res, err := w.Wait(context.Background(), s); res != "answer" || err != nil {
		t.Fatalf("a wait on a closed Waker: %v, %v", res, err)
	}
	w.Return()
	if w.Lend() {
		t.Fatal("a closed Waker was lent")
	}
}
