package actors

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// HostCPU returns a load signal for PoolConfig.Load: the share of the host's CPU time
// that was busy (0 to 1) since the function's previous call (since HostCPU, the first
// time), from /proc/stat. It returns 0 when /proc/stat cannot be read.
func HostCPU() func() float64 {
	var mu sync.Mutex
	busy0, total0 := hostCPUTimes()
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		busy, total := hostCPUTimes()
		if total <= total0 {
			return 0
		}
		load := float64(busy-busy0) / float64(total-total0)
		busy0, total0 = busy, total
		return min(max(load, 0), 1)
	}
}

// hostCPUTimes reads the busy and total clock ticks of all CPUs from /proc/stat's first
// line: idle and iowait are not busy.
func hostCPUTimes() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest times are counted in user already
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}
