// Package monitor measures a process's memory and decides what to make of it.
//
// A [Sampler] takes [Sample]s of one process (or its whole tree): PSS from
// /proc/<pid>/smaps_rollup where the kernel gives it, RSS through gopsutil otherwise, and
// says which. A [Policy] turns samples into decisions (quiet, warn, over the limit) with a
// warning cooldown that repeats early when memory keeps growing; it is a plain function
// of its inputs, tested without processes.
package monitor
