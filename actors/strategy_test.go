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
