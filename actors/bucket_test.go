package actors

import (
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := tokenBucket{rate: 10, tokens: 10, last: t0}
	n := 0
	for range 100 {
		if b.take(t0) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("burst of %d, want 10", n)
	}
	if !b.take(t0.Add(100*time.Millisecond)) || b.take(t0.Add(100*time.Millisecond)) {
		t.Fatal("100 ms at 10/s should allow exactly one more")
	}
	if free := (tokenBucket{}); !free.take(t0) {
		t.Fatal("a zero rate must allow everything")
	}
}
