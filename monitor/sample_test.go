package monitor

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestSampleSelf(t *testing.T) {
	s, err := NewSampler(os.Getpid(), false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if got.Bytes < 1<<20 || got.Processes != 1 || (got.Figure != PSS && got.Figure != RSS) {
		t.Fatalf("sample %+v", got)
	}
	if _, err := os.Stat("/proc/self/smaps_rollup"); err == nil && got.Figure != PSS {
		t.Fatalf("figure %s where smaps_rollup is readable", got.Figure)
	}
	// Below PSSAbove, the cheap RSS figure answers; PSS never exceeds it.
	s.PSSAbove = 1 << 40
	cheap, err := s.Sample()
	if err != nil || cheap.Figure != RSS || cheap.Bytes < got.Bytes/2 {
		t.Fatalf("cheap sample %+v (%v), PSS sample %+v", cheap, err, got)
	}
	s.Close()
}

func TestSampleTree(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	s, _ := NewSampler(os.Getpid(), true)
	defer s.Close()
	got, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if got.Processes < 2 {
		t.Fatalf("tree sample covers %d processes, want this one and its child", got.Processes)
	}
}

func TestSampleVanished(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSampler(cmd.Process.Pid, false); !errors.Is(err, ErrGone) {
		// pid reuse between exit and here is possible but vanishingly rare
		t.Fatalf("sampler for a reaped process: %v", err)
	}
	cmd = exec.Command("sleep", "30")
	cmd.Start()
	s, err := NewSampler(cmd.Process.Pid, false)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := s.Sample(); !errors.Is(err, ErrGone) {
		t.Fatalf("sample of a reaped process: %v, want ErrGone", err)
	}
	s.PSSAbove = 1 << 40
	if _, err := s.Sample(); !errors.Is(err, ErrGone) {
		t.Fatalf("cheap sample of a reaped process: %v, want ErrGone", err)
	}
	s.Close()
}
