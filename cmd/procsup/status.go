package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/procsup/procsup/messages"
)

// row is a process of the status table.
type row struct {
	id string
	v  *messages.ProcessView
}

// sorts are the status table's orders; numbers sort the highest first.
var sorts = map[string]func(a, b row) int{
	"name":     func(a, b row) int { return cmp.Compare(a.id, b.id) },
	"state":    func(a, b row) int { return cmp.Compare(a.v.State, b.v.State) },
	"restarts": func(a, b row) int { return cmp.Compare(b.v.Restarts, a.v.Restarts) },
	"uptime":   func(a, b row) int { return cmp.Compare(b.v.Uptime, a.v.Uptime) },
	"memory":   func(a, b row) int { return cmp.Compare(b.v.MemoryBytes, a.v.MemoryBytes) },
	"cpu":      func(a, b row) int { return cmp.Compare(b.v.CPUPercent, a.v.CPUPercent) },
}

func status(ctx context.Context, c *client, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(errOut)
	watch := fs.Bool("w", false, "refresh the table in place until interrupted")
	every := fs.Duration("every", 2*time.Second, "how often -w refreshes")
	by := fs.String("sort", "", "sort by name, state, restarts, uptime, memory or cpu (default: the tree's order)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if _, ok := sorts[*by]; *by != "" && !ok {
		fmt.Fprintf(errOut, "procsup: -sort %q: name, state, restarts, uptime, memory or cpu\n", *by)
		return errUsage
	}
	if *every <= 0 {
		fmt.Fprintln(errOut, "procsup: -every must be positive")
		return errUsage
	}
	var before map[string]cpuMark
	for {
		snap, err := c.snapshot(ctx)
		if err != nil {
			return err
		}
		if *watch {
			fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear: the table in place
			fmt.Fprintf(out, "%s  every %v, ^C to stop\n", time.Now().Format(time.TimeOnly), *every)
		}
		before = printTable(out, snap, *by, before)
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

// cpuMark is a process's CPU time at a table's making, for the next one's CPU share.
type cpuMark struct {
	pid     int
	started float64
	cpu     float64
	at      time.Time
}

// printTable writes the processes of snap as a table, sorted by (none: the tree's
// order), with a summary line and the problems under it. Its CPU column is the share of
// a core the monitor measured; else the share since the table before (-w); else the CPU
// time so far. It returns the marks for the next table.
func printTable(out io.Writer, snap *messages.Snapshot, by string, before map[string]cpuMark) map[string]cpuMark {
	now := time.Now()
	marks := map[string]cpuMark{}
	var rows []row
	snap.Walk(func(s *messages.Snapshot) {
		if s.Process != nil {
			rows = append(rows, row{s.ID, s.Process})
		}
	})
	if f := sorts[by]; f != nil {
		slices.SortStableFunc(rows, f)
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tRESTARTS\tUPTIME\tMEMORY\tCPU\tNODE\tLAST END")
	for _, r := range rows {
		v := r.v
		marks[r.id] = cpuMark{v.OSPid, v.StartedAt, v.CPU, now}
		cpu := fmt.Sprintf("%.2fs", v.CPU)
		if b, ok := before[r.id]; v.CPUSampled {
			cpu = fmt.Sprintf("%.1f%%", v.CPUPercent)
		} else if ok && b.pid == v.OSPid && b.started == v.StartedAt && now.After(b.at) {
			cpu = fmt.Sprintf("%.1f%%", 100*(v.CPU-b.cpu)/now.Sub(b.at).Seconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.id, v.State, blank(v.OSPid != 0, fmt.Sprint(v.OSPid)), v.Restarts,
			blank(v.State != "dead" && v.Uptime > 0, (time.Duration(v.Uptime*float64(time.Second))).Round(time.Second).String()),
			blank(v.MemoryBytes > 0, fmt.Sprintf("%.1f MB", float64(v.MemoryBytes)/(1<<20))),
			blank(v.OSPid != 0, cpu), blank(v.Node != "", v.Node), lastEnd(v))
	}
	tw.Flush()
	var counts []string
	for state, n := range snap.Counts {
		counts = append(counts, fmt.Sprintf("%s %d", state, n))
	}
	slices.Sort(counts)
	fmt.Fprintf(out, "%d processes: %s\n", len(rows), strings.Join(counts, ", "))
	for _, p := range snap.Problems() {
		fmt.Fprintln(out, "problem:", p)
	}
	return marks
}

// blank is s where a figure was measured, "-" where it was not.
func blank(measured bool, s string) string {
	if !measured {
		return "-"
	}
	return s
}

func lastEnd(v *messages.ProcessView) string {
	s := v.LastReason
	if v.LastError != "" {
		s += ": " + v.LastError
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return blank(s != "", s)
}
