package monitor

import (
	"errors"
	"os/exec"
	"testing"
	"time"
)

func TestCPUPolicy(t *testing.T) {
	p := CPUPolicy{WarnPercent: 50, Period: 2 * time.Second, Cooldown: 10 * time.Second}
	var st CPUState
	t0 := time.Unix(1000, 0)
	steps := []struct {
		cpu  time.Duration // used in the second before
		want Decision
	}{
		{0, Quiet},                       // the first sample: no rate yet
		{900 * time.Millisecond, Quiet},  // 90%, above for 1 s
		{900 * time.Millisecond, Warn},   // above for 2 s: the period
		{900 * time.Millisecond, Quiet},  // cooldown
		{100 * time.Millisecond, Quiet},  // 10%: below, the period starts over
		{1500 * time.Millisecond, Quiet}, // 150% (1.5 cores), above for 1 s
		{1500 * time.Millisecond, Quiet}, // above 2 s, still in the cooldown
	}
	var used time.Duration
	for i, s := range steps {
		used += s.cpu
		if got := p.Decide(&st, used, t0.Add(time.Duration(i)*time.Second)); got != s.want {
			t.Fatalf("step %d (%v): %v, want %v (state %+v)", i, s.cpu, got, s.want, st)
		}
	}
	if st.Percent < 149 || st.Percent > 151 {
		t.Fatalf("percent %v, want 150", st.Percent)
	}
	if got := p.Decide(&st, used+6300*time.Millisecond, t0.Add(13*time.Second)); got != Warn { // 90% for 7 s
		t.Fatalf("after the cooldown: %v", got)
	}
}

func TestCPUSamplerOfABusyProcess(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	s, err := NewCPUSampler(cmd.Process.Pid, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		cpu, err := s.Sample()
		if err != nil {
			t.Fatal(err)
		}
		if cpu >= 50*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a busy loop used %v of CPU in a minute", cpu)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := parseCPUStat([]byte("usage_usec 1500\nuser_usec 1000\n")); err != nil {
		t.Fatal(err)
	}
	if d, _ := parseCPUStat([]byte("usage_usec 1500\n")); d != 1500*time.Microsecond {
		t.Fatalf("usage %v", d)
	}
	if _, err := parseProcStat([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
	if _, err := NewCPUSampler(1<<30, ""); !errors.Is(err, ErrGone) {
		t.Fatalf("a missing process: %v, want ErrGone", err)
	}
}

func TestParseProcStat(t *testing.T) {
	stat := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 120 30 7 20 0 5 0 100 0 0\n"
	d, err := parseProcStat([]byte(stat))
	if err != nil || d != (250+120+30+7)*clockTick {
		t.Fatalf("%v %v", d, err)
	}
	for _, bad := range []string{"1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 4 1 0 0 0 x 1 1 1"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
