package actors

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 3}
	want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w)
		}
	}
	if got := (Backoff{Initial: time.Millisecond}).Delay(4); got != 8*time.Millisecond {
		t.Errorf("default multiplier: %v, want 8ms", got)
	}
}

func TestConfigValidateAcceptsDefaults(t *testing.T) {
	cfg := NewConfig(LauncherForTest())
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Jittered stays within ±Jitter of the delay, and spreads.
func TestJitteredDelaysStayInTheirBand(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Multiplier: 2, Max: time.Second, Jitter: 0.2}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.Jittered(3) // 400 ms ± 20%
		if d < 320*time.Millisecond || d > 480*time.Millisecond {
			t.Fatalf("jittered delay %v outside 320-480 ms", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct delays in 200", len(seen))
	}
}
