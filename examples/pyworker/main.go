// Command pyworker supervises the Python worker beside it (worker.py, on procsup's
// Python runtime, childproc/python): two workers in a tree with restarts, asked to echo,
// upper-case and fail, one of them crashed on purpose and restarted, then the tree shut
// down gracefully:
//
//	go run ./examples/pyworker              # each worker its own interpreter
//	go run ./examples/pyworker -forkserver  # each worker forked from a fork server
//
// With -forkserver a fork server imports procsup's runtime once and forks each worker,
// the restarted one included, from it (see python.Forkserver). It needs a python3 with
// msgpack (Debian: apt-get install python3-msgpack).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/childproc/python"
	"github.com/procsup/procsup/messages"
)

func main() {
	fork := flag.Bool("forkserver", false, "start the workers from a fork server")
	flag.Parse()
	os.Exit(run(os.Stdout, *fork))
}

// lockedWriter lets the actors' goroutines and this one print to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func run(w io.Writer, fork bool) int {
	out := &lockedWriter{w: w}
	py, err := python.Interpreter()
	if err != nil {
		fmt.Fprintln(out, "pyworker:", err)
		return 1
	}
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "worker.py")
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	defer system.Shutdown()
	system.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(messages.Event); ok {
			fmt.Fprintln(out, "event:", e)
		}
	})

	var launcher launch.Launcher = &launch.Command{Path: py, Args: []string{script}}
	if fork {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		fs, err := python.StartForkserver(ctx, python.ForkserverOptions{
			Interpreter: py,
			Path:        []string{filepath.Join(filepath.Dir(here), "..", "..", "childproc", "python")},
		})
		cancel()
		if err != nil {
			fmt.Fprintln(out, "pyworker:", err)
			return 1
		}
		defer fs.Close() // after the tree's stop below: the workers need it only to start
		fmt.Fprintf(out, "fork server: pid %d\n", fs.Pid())
		launcher = fs.Script(script)
	}
	cfg := actors.NewConfig(launcher)
	cfg.Logger = logger
	props, err := actors.NewProcess(cfg)
	if err != nil {
		fmt.Fprintln(out, "pyworker:", err)
		return 1
	}
	strategy := actors.NewStrategy(actors.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2,
		MaxRestarts: 3, Window: time.Minute})
	tree := system.Root.Spawn(actors.NewTree(strategy,
		actors.Spec{Name: "py-1", Props: props}, actors.Spec{Name: "py-2", Props: props}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer actors.StopAndWait(ctx, system, tree)

	one, two := actors.ChildPID(tree, "py-1"), actors.ChildPID(tree, "py-2")
	for _, ask := range []struct{ kind, body string }{{"echo", "hello"}, {"upper", "hello"}, {"fail", ""}} {
		reply, err := actors.Ask(ctx, system, one, ask.kind, []byte(ask.body))
		var re *messages.RemoteError
		switch {
		case errors.As(err, &re):
			fmt.Fprintf(out, "ask %s: error reply %q, code %q\n", ask.kind, re.Message, re.Code)
		case err != nil:
			fmt.Fprintf(out, "ask %s: %v\n", ask.kind, err)
			return 1
		default:
			fmt.Fprintf(out, "ask %s: %q\n", ask.kind, reply)
		}
	}
	before, err := actors.Status(ctx, system, two)
	if err != nil {
		fmt.Fprintln(out, "pyworker:", err)
		return 1
	}
	_, err = actors.Ask(ctx, system, two, "crash", nil)
	fmt.Fprintf(out, "ask crash: %v\n", err)
	for {
		st, err := actors.Status(ctx, system, two)
		if err == nil && st.State == messages.Running && st.OSPid != before.OSPid {
			fmt.Fprintf(out, "py-2 restarted: pid %d, then %d, restarts %d\n", before.OSPid, st.OSPid, st.Restarts)
			break
		}
		if ctx.Err() != nil {
			fmt.Fprintln(out, "pyworker: py-2 did not come back")
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	reply, err := actors.Ask(ctx, system, two, "echo", []byte("again"))
	fmt.Fprintf(out, "ask echo after the restart: %q, %v\n", reply, err)
	if err := actors.StopAndWait(ctx, system, tree); err != nil {
		fmt.Fprintln(out, "pyworker:", err)
		return 1
	}
	fmt.Fprintln(out, "done: the tree stopped, every worker exited")
	return 0
}
