package main

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/stat's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuOf is the CPU time the processes have used, all their threads, from each thread's
// schedstat: nanoseconds the scheduler counted, not the ticks of /proc/<pid>/stat, which
// charge a whole 10 ms to whoever runs when the tick comes and are biased against work
// that timers wake. A process that is gone counts nothing.
func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/task/"
		tasks, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(dir + t.Name() + "/schedstat")
			if err != nil {
				continue
			}
			f := bytes.Fields(b)
			if len(f) == 0 {
				continue
			}
			ns, _ := strconv.ParseInt(string(f[0]), 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// rssOf is a process's resident set size in bytes (VmRSS), 0 if it is gone.
func rssOf(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("VmRSS:"))
	if !ok {
		return 0
	}
	f := bytes.Fields(rest)
	kb, _ := strconv.ParseUint(string(f[0]), 10, 64)
	return kb << 10
}

// systemBusy is the CPU time every core of the machine has spent not idle.
func systemBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)[1:] // user nice system idle iowait irq softirq steal ...
	var busy int
	for i, v := range f {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are within user
			continue
		}
		n, _ := strconv.Atoi(string(v))
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// selfCPU is this process's CPU time, user and system.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapAndStacks is what this process's live Go objects and goroutine stacks take after
// two collections: the bytes of the objects (not of the spans that hold them, which
// the churn of earlier figures leaves half empty) and of the stacks.
func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

// ussOf is a process's unique set size in bytes: the pages only it maps (its heap, its
// stacks, the pages of its binary it wrote to), what another child of the same program
// adds; 0 if it is gone.
func ussOf(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	var total uint64
	for _, field := range []string{"Private_Clean:", "Private_Dirty:"} {
		_, rest, ok := bytes.Cut(b, []byte(field))
		if !ok {
			continue
		}
		kb, _ := strconv.ParseUint(string(bytes.Fields(rest)[0]), 10, 64)
		total += kb << 10
	}
	return total
}
