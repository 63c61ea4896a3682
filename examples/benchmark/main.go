// Command benchmark measures procsup side by side with the raw floor and
// hashicorp/go-plugin (net/rpc), in one run, and prints a table of medians and ratios:
//
//	cd examples/benchmark && go run .
//
// It is a module of its own, so that go-plugin and its dependencies stay out of
// procsup's. Every child is built first, separately, as users build theirs: the floor is
// the smallest Go program that echoes a raw socket with blocking reads
// (childproctest/rawminimal), procsup's child the smallest procsup child
// (childproctest/minimal), go-plugin's an echo plugin (gopluginecho/plugin). The rounds
// are interleaved (floor, procsup, go-plugin, again), so that all three see the same
// machine. Each process is supervised by a process actor with NewConfig's defaults.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/examples/benchmark/gopluginecho"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

func main() {
	starts := flag.Int("starts", 50, "starts (and kills) of each kind, interleaved")
	asks := flag.Int("asks", 2000, "sequential round trips of each kind, interleaved")
	flag.Parse()
	if err := run(*starts, *asks, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
}

// children are the three programs, built.
type children struct{ raw, procsup, plugin string }

func build(dir string) (children, error) {
	c := children{filepath.Join(dir, "rawminimal"), filepath.Join(dir, "minimal"), filepath.Join(dir, "plugin")}
	for out, pkg := range map[string]string{
		c.raw:     "github.com/procsup/procsup/childproc/childproctest/rawminimal",
		c.procsup: "github.com/procsup/procsup/childproc/childproctest/minimal",
		c.plugin:  "github.com/procsup/procsup/examples/benchmark/gopluginecho/plugin",
	} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			return c, fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return c, nil
}

// result is one figure: the three medians.
type result struct {
	what                 string
	floor, procsup, plug time.Duration
}

func run(starts, asks int, out io.Writer) error {
	dir, err := os.MkdirTemp("", "procsup-benchmark")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := build(dir)
	if err != nil {
		return err
	}
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	defer system.Shutdown()
	cfg := actors.NewConfig(&launch.Command{Path: c.procsup})
	cfg.Logger, cfg.Restart = quiet, actors.Temporary
	props, err := actors.NewProcess(cfg)
	if err != nil {
		return err
	}
	p := &procsupSide{system: system, props: props, events: make(chan any, 64)}
	system.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.StateChanged:
			if e.To == messages.Running {
				p.events <- e
			}
		case *messages.Exited:
			p.events <- e
		}
	})

	var results []result
	// Spawn to ready, and SIGKILL to reaped (to Exited, for procsup): each round starts
	// one of each, makes it answer once, kills it.
	var up, down [3][]time.Duration
	for range starts {
		for i, side := range []func() (time.Duration, time.Duration, error){
			func() (time.Duration, time.Duration, error) { return rawStartKill(c.raw) },
			p.startKill,
			func() (time.Duration, time.Duration, error) { return pluginStartKill(c.plugin) },
		} {
			u, d, err := side()
			if err != nil {
				return err
			}
			up[i], down[i] = append(up[i], u), append(down[i], d)
		}
	}
	results = append(results, result{"spawn to ready", median(up[0]), median(up[1]), median(up[2])},
		result{"SIGKILL to reaped (procsup: to Exited)", median(down[0]), median(down[1]), median(down[2])})

	// Sequential request round trips, 16 bytes, one child each.
	rt, err := roundTrips(c, p, asks)
	if err != nil {
		return err
	}
	results = append(results, rt)

	fmt.Fprintf(out, "procsup side by side, medians (%d starts and kills, %d round trips of each kind, interleaved)\n\n", starts, asks)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tfloor (raw socket)\tprocsup\tgo-plugin net/rpc")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%v\t%v (%.2fx)\t%v (%.2fx)\n", r.what, round(r.floor), round(r.procsup), ratio(r.procsup, r.floor),
			round(r.plug), ratio(r.plug, r.floor))
	}
	tw.Flush()
	fmt.Fprintf(out, "\nprocsup against go-plugin net/rpc: spawn %.2fx faster, round trip %.2fx faster\n",
		ratio(results[0].plug, results[0].procsup), ratio(results[2].plug, results[2].procsup))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

// rawStartKill starts the floor child, echoes one frame, and SIGKILLs it.
func rawStartKill(path string) (up, down time.Duration, err error) {
	began := time.Now()
	proc, err := launch.Start(context.Background(), &launch.Command{Path: path})
	if err != nil {
		return 0, 0, err
	}
	defer proc.Close()
	frame, _ := wire.Encode(&wire.InitializeRequest{})
	if _, err := proc.Control().Write(frame); err != nil {
		return 0, 0, err
	}
	if _, err := io.ReadFull(proc.Control(), make([]byte, len(frame))); err != nil {
		return 0, 0, err
	}
	up = time.Since(began)
	began = time.Now()
	proc.Signal(syscall.SIGKILL)
	proc.Wait(context.Background())
	return up, time.Since(began), nil
}

// procsupSide is the process actors' side.
type procsupSide struct {
	system *actor.ActorSystem
	props  *actor.Props
	events chan any
}

// startKill spawns a process actor until it runs, then SIGKILLs its process and waits
// for Exited.
func (p *procsupSide) startKill() (up, down time.Duration, err error) {
	began := time.Now()
	pid := p.system.Root.Spawn(p.props)
	run := (<-p.events).(*messages.StateChanged)
	up = time.Since(began)
	began = time.Now()
	syscall.Kill(run.OSPid, syscall.SIGKILL)
	for {
		if _, ok := (<-p.events).(*messages.Exited); ok {
			break
		}
	}
	down = time.Since(began)
	actors.StopAndWait(context.Background(), p.system, pid)
	return up, down, nil
}

// pluginStartKill starts the go-plugin child until its echo can be called, then
// SIGKILLs it and waits until go-plugin has reaped it.
func pluginStartKill(path string) (up, down time.Duration, err error) {
	began := time.Now()
	client, echo, err := startPlugin(path)
	if err != nil {
		return 0, 0, err
	}
	up = time.Since(began)
	pid := client.ReattachConfig().Pid
	began = time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	for !client.Exited() {
		time.Sleep(20 * time.Microsecond) // go-plugin says so only by polling
	}
	down = time.Since(began)
	_ = echo
	client.Kill()
	return up, down, nil
}

func startPlugin(path string) (*plugin.Client, gopluginecho.Echo, error) {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: gopluginecho.Handshake,
		Plugins:         map[string]plugin.Plugin{"echo": &gopluginecho.Plugin{}},
		Cmd:             exec.Command(path),
		Logger:          hclog.NewNullLogger(),
	})
	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, nil, err
	}
	raw, err := rpcClient.Dispense("echo")
	if err != nil {
		client.Kill()
		return nil, nil, err
	}
	return client, raw.(gopluginecho.Echo), nil
}

// roundTrips times sequential 16-byte round trips to one child of each kind.
func roundTrips(c children, p *procsupSide, n int) (result, error) {
	body := []byte(strings.Repeat("x", 16))
	// The floor: a frame of the same request echoed by the raw child.
	raw, err := launch.Start(context.Background(), &launch.Command{Path: c.raw})
	if err != nil {
		return result{}, err
	}
	defer func() { raw.Close(); raw.Wait(context.Background()) }()
	frame, _ := wire.Encode(&wire.Request{ID: 1, Kind: "echo", Body: body})
	echoed := make([]byte, len(frame))
	// procsup: a running process actor, asked through actors.Ask.
	pid := p.system.Root.Spawn(p.props)
	<-p.events
	defer actors.StopAndWait(context.Background(), p.system, pid)
	// go-plugin.
	client, echo, err := startPlugin(c.plugin)
	if err != nil {
		return result{}, err
	}
	defer client.Kill()

	var t [3][]time.Duration
	ctx := context.Background()
	for range n {
		began := time.Now()
		raw.Control().Write(frame)
		if _, err := io.ReadFull(raw.Control(), echoed); err != nil {
			return result{}, err
		}
		t[0] = append(t[0], time.Since(began))
		began = time.Now()
		if _, err := actors.Ask(ctx, p.system, pid, "echo", body); err != nil {
			return result{}, err
		}
		t[1] = append(t[1], time.Since(began))
		began = time.Now()
		if _, err := echo.Echo(body); err != nil {
			return result{}, err
		}
		t[2] = append(t[2], time.Since(began))
	}
	return result{"request round trip (16 bytes, sequential)", median(t[0]), median(t[1]), median(t[2])}, nil
}
