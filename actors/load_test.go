package actors

import (
	"runtime"
	"testing"
	"time"
)

func TestHostCPU(t *testing.T) {
	load := HostCPU()
	stop := make(chan struct{})
	go func() { // one core busy
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	defer close(stop)
	deadline := time.Now().Add(time.Minute)
	for {
		time.Sleep(100 * time.Millisecond)
		l := load()
		if l < 0 || l > 1 {
			t.Fatalf("load %v out of [0, 1]", l)
		}
		if l > 0.5/float64(runtime.NumCPU()) { // half a busy core
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a busy core never showed: %v", l)
		}
	}
}
