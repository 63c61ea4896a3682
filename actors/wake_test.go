package actors

import (
	"context"
	"errors"
	"testing"
)

func newTestWakeFd(t *testing.T) *wakeFd {
	t.Helper()
	w, err := newWakeFd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	return w
}

// A waiter is woken by the answer put on its channel and signalled, as many times as it
// waits, whichever comes first: the waiter or the answer.
func TestWakeFdWakesItsWaiter(t *testing.T) {
	w := newTestWakeFd(t)
	ch := make(chan any, 1)
	for i := range 100 {
		go func() {
			ch <- i
			w.signal()
		}()
		res, err, ok := w.wait(context.Background(), ch)
		if res != i || err != nil || !ok {
			t.Fatalf("wait %d: %v, %v, %v", i, res, err, ok)
		}
	}
}

// A wait ends with its ctx; the deadline that ended it is cleared for the next waiter,
// which waits for its answer.
func TestWakeFdWaitEndsWithCtx(t *testing.T) {
	w := newTestWakeFd(t)
	ch := make(chan any, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	if res, err, ok := w.wait(ctx, ch); res != nil || !errors.Is(err, context.Canceled) || !ok {
		t.Fatalf("a cancelled wait: %v, %v, %v", res, err, ok)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() {
		ch <- "answer"
		w.signal()
	}()
	if res, err, ok := w.wait(ctx, ch); res != "answer" || err != nil || !ok {
		t.Fatalf("the next wait: %v, %v, %v", res, err, ok)
	}
}

// A wait on a descriptor closed under it reports that it could not wait.
func TestWakeFdClosedUnderAWaiter(t *testing.T) {
	w := newTestWakeFd(t)
	go w.close()
	if res, err, ok := w.wait(context.Background(), make(chan any)); res != nil || err != nil || ok {
		t.Fatalf("a wait on a closed descriptor: %v, %v, %v", res, err, ok)
	}
}
