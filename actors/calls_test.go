package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// open counts the calls of system that are still open.
func open(system *actor.ActorSystem) int {
	c := callsOf(system)
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// A call's answer reaches it through the registry, as any actor's reply does; a call
// that ended (answered, or its ctx done) is closed, and an answer that comes after
// that is dropped.
func TestCallsAnswerOpenCallsOnly(t *testing.T) {
	system := QuietSystem(t)
	held := make(chan *actor.PID, 1)
	pid := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case string:
			if m == "hold" {
				held <- ctx.Sender()
				return
			}
			ctx.Respond(m + "!")
		}
	}))
	t.Cleanup(func() { system.Root.Stop(pid) })

	for range 3 {
		res, err := call(context.Background(), system, pid, "echo")
		if res != "echo!" || err != nil {
			t.Fatalf("call: %v, %v; want echo!", res, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := call(ctx, system, pid, "hold"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call never answered: %v, want DeadlineExceeded", err)
	}
	if n := open(system); n != 0 {
		t.Fatalf("%d calls open after every call returned", n)
	}
	late := <-held
	if a := callsOf(system).lookup(late); a != nil {
		t.Fatal("the sender of a call that returned still finds its answer")
	}
	system.Root.Send(late, "too late") // dropped
	res, err := call(context.Background(), system, pid, "next")
	if res != "next!" || err != nil {
		t.Fatalf("the call after a late answer: %v, %v; want next!", res, err)
	}
}

// Request IDs skip zero and every ID still open when they wrap around.
func TestCallsSkipOpenIDsWhenWrapping(t *testing.T) {
	c := callsOf(QuietSystem(t))
	c.last = ^uint32(0) - 1
	first := c.add(&answer{})
	held := c.add(&answer{})
	if first.RequestId != ^uint32(0) || held.RequestId != 1 {
		t.Fatalf("ids %d, %d; want %d, 1 (zero skipped)", first.RequestId, held.RequestId, ^uint32(0))
	}
	c.remove(first)
	c.last = 0
	if next := c.add(&answer{}); next.RequestId != 2 {
		t.Fatalf("id %d; want 2 (1 is open)", next.RequestId)
	}
	for _, pid := range []*actor.PID{nil, {Address: c.system.Address(), Id: "other", RequestId: 1}, {Address: "elsewhere:1", Id: callsID, RequestId: 1}} {
		if c.lookup(pid) != nil {
			t.Errorf("%v found a call's answer", pid)
		}
	}
	if c.lookup(held) == nil {
		t.Error("an open call's sender did not find its answer")
	}
}

// Only the system's only open call borrows the process's eventfd to wait on; with
// others in flight a caller waits on its channel.
func TestOnlyALoneInlineCallBorrowsTheWakeFd(t *testing.T) {
	system := QuietSystem(t)
	a := newAsks(system)
	t.Cleanup(a.release)
	c := callsOf(system)
	c.now = func() int64 { return int64(time.Hour) } // one millisecond for all
	first, second := &answer{inline: true}, &answer{inline: true}
	firstPid := c.add(first)
	secondPid := c.add(second)
	if !first.lone || second.lone {
		t.Fatalf("lone: %v, %v; want true, false", first.lone, second.lone)
	}
	for _, pid := range []*actor.PID{firstPid, secondPid} {
		if _, ok := a.add(pid); !ok {
			t.Fatal("asks refused an Ask")
		}
	}
	if first.wake == nil || second.wake != nil {
		t.Fatalf("borrowed: %v, %v; want the lone call only", first.wake != nil, second.wake != nil)
	}
	c.remove(firstPid)
	c.remove(secondPid)
	third := &answer{}
	c.remove(c.add(third))
	if !third.lone {
		t.Fatal("a call opened after the others closed is not lone")
	}
}

// A call is lone when no other call that opened in its millisecond or the one before is
// still open: a call that has waited longer (on a slow handler) does not count, one that
// has ended does not either.
func TestALongCallDoesNotMakeTheNextOneLessLone(t *testing.T) {
	c := callsOf(QuietSystem(t))
	now := 10 * time.Millisecond
	c.now = func() int64 { return int64(now) }
	opened := map[string]*actor.PID{}
	open := func(name string, lone bool) {
		t.Helper()
		a := &answer{}
		opened[name] = c.add(a)
		if a.lone != lone {
			t.Fatalf("at %v, call %s lone %v, want %v", now, name, a.lone, lone)
		}
	}
	open("long", true)
	open("same ms", false)
	c.remove(opened["same ms"])
	now += time.Millisecond
	open("next ms", false) // long opened a millisecond ago
	now += 1500 * time.Microsecond
	open("1.5 ms on", false) // next ms is young
	c.remove(opened["next ms"])
	c.remove(opened["1.5 ms on"])
	open("alone with long", true) // long is 2.5 ms old
	c.remove(opened["alone with long"])
	now += time.Hour // every slot's millisecond long gone
	open("an hour on", true)
	c.remove(opened["an hour on"])
	c.remove(opened["long"])
	for i, y := range c.young {
		if y.n != 0 {
			t.Errorf("slot %d counts %d open calls after every call closed", i, y.n)
		}
	}
}
