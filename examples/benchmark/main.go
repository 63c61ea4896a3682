// Command benchmark measures procsup side by side with the raw floor and
// hashicorp/go-plugin (over net/rpc and over gRPC), in one run, and prints a table of
// medians and their ratios to the floor:
//
//	cd examples/benchmark && go run .
//
// It is a module of its own, so that go-plugin and its dependencies stay out of
// procsup's. Every child is built first, separately, as users build theirs: the floor is
// the smallest Go program that echoes a raw socket with blocking reads
// (childproc/childproctest/rawminimal), started by os/exec; procsup's child is the
// smallest procsup child (childproc/childproctest/minimal) under a process actor with
// NewConfig's defaults; go-plugin's is an echo plugin (gopluginecho/plugin). Starts and
// endings are interleaved (floor, procsup, go-plugin, again), round trips too in blocks
// of a hundred back to back, in four passes with new children, so that every side sees
// the same machine (with a 1 s deadline on each round trip too, as two more sides of the
// same passes: the floor's on its socket, procsup's on its ctx); the fleets (many
// children asked every 100 ms, or idle) run one side after the other. Progress goes to
// stderr, with the odd line go-plugin's yamux logs there when a plugin is killed.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hashicorp/go-plugin"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
)

// options are the command's flags.
type options struct {
	starts, asks   int
	cycleFor       time.Duration
	fleets         []int
	pluginFleetMax int
	every, asked   time.Duration
	idle           time.Duration
	heapProfile    string
	fleetTrace     string
	cpuProfile     string
}

func main() {
	if spec := os.Getenv(envHelper); spec != "" {
		keeperHelper(spec) // an earlier supervising program, for keeperRows
	}
	var o options
	fleets := flag.String("fleets", "100,500", "sizes of the fleets of children asked every -every, and idle")
	flag.IntVar(&o.starts, "starts", 50, "starts of each side, each killed, and as many closed, interleaved")
	flag.IntVar(&o.asks, "asks", 8000, fmt.Sprintf("sequential round trips to a child of each side, interleaved, in %d passes with new children", roundTripPasses))
	flag.DurationVar(&o.cycleFor, "cycles", 2*time.Second, "how long each of 3 rounds of spawn+ready+kill cycles runs, per side")
	flag.IntVar(&o.pluginFleetMax, "plugin-fleet-max", 100, "the largest fleet go-plugin runs (each of its children takes about 12 MB)")
	flag.DurationVar(&o.every, "every", 100*time.Millisecond, "how often each child of an asked fleet is asked")
	flag.DurationVar(&o.asked, "asked", 5*time.Second, "how long an asked fleet is measured")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "how long an idle fleet is measured (four of procsup's ping intervals by default)")
	flag.StringVar(&o.heapProfile, "heapprofile", "", "write a heap profile of this process, taken while the largest idle fleet of procsup children is held, to this file")
	flag.StringVar(&o.fleetTrace, "fleettrace", "", "write a runtime trace of this process while the largest asked fleet of each side is asked, to this path with the side's name appended (for go tool trace)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process, the whole run, to this file")
	maxprocs := flag.Int("child-gomaxprocs", 0, "GOMAXPROCS of every side's children (0: as the machine gives)")
	flag.Parse()
	if *maxprocs > 0 {
		childEnv = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", *maxprocs))
	}
	if o.heapProfile != "" {
		runtime.MemProfileRate = 1 // every allocation, for an exact profile
	}
	for _, f := range strings.Split(*fleets, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "benchmark: -fleets: %q is not a positive number\n", f)
			os.Exit(2)
		}
		o.fleets = append(o.fleets, n)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchmark:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// build builds the three programs into dir: the floor, procsup's child and the plugin.
func build(ctx context.Context, dir string) (raw, minimal, plug string, err error) {
	raw, minimal, plug = filepath.Join(dir, "rawminimal"), filepath.Join(dir, "minimal"), filepath.Join(dir, "plugin")
	for out, pkg := range map[string]string{
		raw:     "github.com/procsup/procsup/childproc/childproctest/rawminimal",
		minimal: "github.com/procsup/procsup/childproc/childproctest/minimal",
		plug:    "github.com/procsup/procsup/examples/benchmark/gopluginecho/plugin",
	} {
		if b, err := exec.CommandContext(ctx, "go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			return "", "", "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return raw, minimal, plug, nil
}

// A row is one figure: a value per side (NaN where a side was not measured) in a unit.
type row struct {
	what string
	unit string // "time", "/s", "%", "MB", "KB", "asks"
	vals []float64
}

func run(o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "procsup-benchmark")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	building, stopBuilding := context.WithCancel(context.Background())
	built := make(chan struct{})
	go func() {
		<-interrupted
		stopBuilding() // a go build under way is killed, and waited for: it would write into dir
		<-built
		// procsup's children die with this process (their parent-death signal), the
		// floor's at the end of their sockets; go-plugin's must be killed.
		plugin.CleanupClients()
		os.RemoveAll(dir)
		os.Exit(1)
	}()
	raw, minimal, plug, err := build(building, dir)
	close(built)
	if err != nil {
		return err
	}
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	defer system.Shutdown()
	cfg := actors.NewConfig(&launch.Command{Path: minimal, Env: childEnv})
	cfg.Logger, cfg.Restart = quiet, actors.Temporary
	props, err := actors.NewProcess(cfg)
	if err != nil {
		return err
	}
	sides := []side{floorSide{path: raw}, newProcsupSide(system, props), pluginSide{path: plug}, pluginSide{path: plug, grpc: true}}
	var rows []row
	progress := func(what string) { fmt.Fprintf(os.Stderr, "%s: %s\n", time.Now().Format("15:04:05"), what) }

	progress("starts and endings")
	up, kill, closing, err := startKill(sides, o.starts)
	if err != nil {
		return err
	}
	rows = append(rows, row{"spawn to ready", "time", medians(up)},
		row{"SIGKILL to reaped (procsup: to Exited)", "time", medians(kill)},
		row{"graceful close to reaped (procsup: to Exited)", "time", medians(closing)})

	progress("round trips")
	bounded := floorSide{path: raw, what: "floor, 1 s deadline", deadline: time.Second}
	rt, err := roundTrips(append(sides, bounded, deadlineSide{sides[1].(*procsupSide)}), o.asks)
	if err != nil {
		return err
	}
	rts := medians(rt)
	rows = append(rows, row{"request round trip (16 bytes, sequential)", "time", rts[:4]},
		row{"the same, each bounded by a 1 s deadline (floor: the socket's; procsup: the ctx's)", "time", []float64{rts[4], rts[5], math.NaN(), math.NaN()}})

	pyRows, err := pythonRows(system, quiet, o, progress)
	if err != nil {
		return err
	}
	rows = append(rows, pyRows...)

	keptRows, err := keeperRows(system, quiet, o, minimal, progress)
	if err != nil {
		return err
	}
	rows = append(rows, keptRows...)

	progress("spawn+ready+kill cycles")
	rates, err := cycles(sides, 2, 3, o.cycleFor)
	if err != nil {
		return err
	}
	cyc := make([]float64, len(sides))
	for i, r := range rates {
		cyc[i] = median(r)
	}
	rows = append(rows, row{"spawn+ready+kill cycles/s, 2 workers", "/s", cyc})

	for _, n := range o.fleets {
		for _, every := range []time.Duration{0, o.every} {
			hold := o.asked
			if every == 0 {
				hold = o.idle
			}
			loads := make([]load, len(sides))
			measured := make([]bool, len(sides))
			for i, s := range sides {
				if _, ok := s.(pluginSide); ok && n > o.pluginFleetMax {
					continue
				}
				if every > 0 {
					progress(fmt.Sprintf("%d children of %s asked every %v", n, s.name(), every))
				} else {
					progress(fmt.Sprintf("%d idle children of %s", n, s.name()))
				}
				heapProfile, tracePath := "", ""
				if n == slices.Max(o.fleets) {
					heapProfile, tracePath = o.heapProfile, o.fleetTrace
				}
				if loads[i], err = fleet(s, n, every, hold, heapProfile, tracePath); err != nil {
					return err
				}
				measured[i] = true
			}
			pick := func(f func(load) float64) []float64 {
				v := make([]float64, len(sides))
				for i, l := range loads {
					v[i] = math.NaN()
					if measured[i] {
						v[i] = f(l)
					}
				}
				return v
			}
			if every > 0 {
				what := fmt.Sprintf("%d children each asked every %v: ", n, every)
				rows = append(rows,
					row{what + "round trip median", "time", pick(func(l load) float64 { return float64(l.rtt) })},
					row{what + "round trip, 99th percentile", "time", pick(func(l load) float64 { return float64(l.p99) })},
					row{what + "asks not sent in time", "asks", pick(func(l load) float64 { return float64(l.unsent) })},
					row{what + "the same, due after the first second", "asks", pick(func(l load) float64 { return float64(l.unsentLater) })},
					row{what + "parent CPU", "%", pick(func(l load) float64 { return l.parent })},
					row{what + "children's CPU", "%", pick(func(l load) float64 { return l.kids })})
				continue
			}
			what := fmt.Sprintf("%d idle children: ", n)
			rows = append(rows,
				row{what + "their CPU", "%", pick(func(l load) float64 { return l.kids })},
				row{what + "parent CPU", "%", pick(func(l load) float64 { return l.parent })},
				row{what + "the machine's CPU", "%", pick(func(l load) float64 { return l.system })},
				row{what + "child RSS (median)", "MB", pick(func(l load) float64 { return float64(l.rss) / (1 << 20) })},
				row{what + "child USS, its own pages (median)", "MB", pick(func(l load) float64 { return float64(l.uss) / (1 << 20) })},
				row{what + "parent memory per child", "KB", pick(func(l load) float64 { return l.parentPerChild / 1024 })},
				row{what + "then each asked once, one after another: children's CPU per ask", "time", pick(func(l load) float64 { return orNaN(float64(l.firstAsk)) })},
				row{what + "the same, each asked again a second later", "time", pick(func(l load) float64 { return orNaN(float64(l.secondAsk)) })})
		}
	}
	printTable(out, o, sides, rows)
	return nil
}

func printTable(out io.Writer, o options, sides []side, rows []row) {
	fmt.Fprintf(out, "\nprocsup side by side: medians; ratios to the floor in parentheses (%d starts and kills, %d round trips per side, interleaved; CPU in %% of one core)\n\n", o.starts, o.asks)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "figure")
	for _, s := range sides {
		fmt.Fprint(tw, "\t", s.name())
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprint(tw, r.what)
		for i, v := range r.vals {
			fmt.Fprint(tw, "\t", format(v, r.unit))
			if i > 0 && !math.IsNaN(v) && r.vals[0] > 0 {
				fmt.Fprintf(tw, " (%.2fx)", v/r.vals[0])
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nprocsup against go-plugin (net/rpc, gRPC): spawn to ready %.2fx and %.2fx faster, round trip %.2fx and %.2fx faster\n",
		rows[0].vals[2]/rows[0].vals[1], rows[0].vals[3]/rows[0].vals[1], rows[3].vals[2]/rows[3].vals[1], rows[3].vals[3]/rows[3].vals[1])
}

// orNaN is v, or NaN ("-" in the table) for 0: a figure a side does not have.
func orNaN(v float64) float64 {
	if v == 0 {
		return math.NaN()
	}
	return v
}

func format(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case unit == "time":
		d := time.Duration(v)
		if d > time.Millisecond {
			return d.Round(10 * time.Microsecond).String()
		}
		return d.Round(100 * time.Nanosecond).String()
	case unit == "%":
		return fmt.Sprintf("%.2f%%", v)
	case unit == "asks":
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}

func medians(d [][]time.Duration) []float64 {
	m := make([]float64, len(d))
	for i, s := range d {
		m[i] = float64(median(s))
	}
	return m
}

// median is the middle of v (0 for none), v left as it was.
func median[T cmp.Ordered](v []T) T {
	var zero T
	if len(v) == 0 {
		return zero
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
