package monitor

import (
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	const mb = 1 << 20
	p := Policy{WarnBytes: 100 * mb, LimitBytes: 500 * mb, Cooldown: time.Minute, RepeatGrowth: 50 * mb}
	t0 := time.Unix(1000, 0)
	var st State
	steps := []struct {
		at   time.Duration
		mb   uint64
		want Decision
	}{
		{0, 80, Quiet},                 // below warn; baseline 80
		{5 * time.Second, 120, Warn},   // first time above warn
		{10 * time.Second, 130, Quiet}, // within cooldown, little growth
		{20 * time.Second, 171, Warn},  // grew 51 MB since the last warning: early repeat
		{30 * time.Second, 180, Quiet}, // cooldown again
		{81 * time.Second, 180, Warn},  // cooldown over (60 s after the warning at 20 s)
		{82 * time.Second, 90, Quiet},  // back under
		{83 * time.Second, 501, OverLimit},
		{84 * time.Second, 501, OverLimit}, // the limit is never rate-limited
	}
	for i, s := range steps {
		got := p.Decide(&st, Sample{Bytes: s.mb * mb}, t0.Add(s.at))
		if got != s.want {
			t.Fatalf("step %d (%d MB at %v): %v, want %v", i, s.mb, s.at, got, s.want)
		}
	}
	if st.Baseline != 80*mb || st.Growth(180*mb) != 100*mb || st.Growth(10) != 0 {
		t.Fatalf("baseline %d", st.Baseline)
	}
}

func TestPolicyOff(t *testing.T) {
	var st State
	if d := (Policy{}).Decide(&st, Sample{Bytes: 1 << 40}, time.Now()); d != Quiet {
		t.Fatalf("%v with every check off", d)
	}
}

func TestPolicyDefaults(t *testing.T) {
	p := Policy{WarnBytes: 10}
	var st State
	now := time.Now()
	if p.Decide(&st, Sample{Bytes: 20}, now) != Warn || p.Decide(&st, Sample{Bytes: 30}, now.Add(time.Minute)) != Quiet ||
		p.Decide(&st, Sample{Bytes: 30}, now.Add(DefaultWarnCooldown)) != Warn {
		t.Fatal("default cooldown not applied")
	}
	if p.Decide(&st, Sample{Bytes: 30 + DefaultRepeatGrowth}, now.Add(DefaultWarnCooldown+time.Second)) != Warn {
		t.Fatal("default growth repeat not applied")
	}
}
