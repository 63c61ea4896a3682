package actors_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

func quietSystem() *actor.ActorSystem {
	quiet := slog.New(slog.DiscardHandler)
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
}

// Spawn a process actor, ask its child something, and close it.
func ExampleNewProcess() {
	system := quietSystem()
	defer system.Shutdown()

	cmd, _ := launch.SelfCommand("echo") // this binary, re-executed as the child
	cfg := actors.NewConfig(cmd)         // every default: pings, timeouts, memory warning
	cfg.Logger = slog.New(slog.DiscardHandler)
	props, err := actors.NewProcess(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	events := make(chan any, 16)
	system.EventStream.Subscribe(func(ev any) {
		switch ev.(type) {
		case *messages.StateChanged, *messages.Exited:
			events <- ev
		}
	})
	pid := system.Root.Spawn(props)
	for ev := range events {
		if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
			break
		}
	}
	res, _ := system.Root.RequestFuture(pid, &messages.Ask{Kind: "echo", Body: []byte("hi")}, time.Second).Result()
	fmt.Printf("reply: %s\n", res.(*messages.Response).Body)

	system.Root.Send(pid, &messages.Close{Reason: "example over"})
	for ev := range events {
		if ex, ok := ev.(*messages.Exited); ok {
			fmt.Printf("exited: %s, exit code %d, killed %v\n", ex.Reason, ex.ExitCode, ex.Killed)
			break
		}
	}
	// Output:
	// reply: hi
	// exited: closed on request, exit code 0, killed false
}

// A tree restarts a crashing child with exponential backoff until its intensity limit.
func ExampleNewTree() {
	system := quietSystem()
	defer system.Shutdown()

	cmd, _ := launch.SelfCommand("crash") // exits 3 right after initializing
	cfg := actors.NewConfig(cmd)
	cfg.Logger = slog.New(slog.DiscardHandler)
	props, _ := actors.NewProcess(cfg)
	strategy := actors.NewStrategy(actors.Backoff{
		Initial: 10 * time.Millisecond, Multiplier: 2, Max: time.Second, MaxRestarts: 3, Window: time.Minute,
	})
	done := make(chan struct{})
	system.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *messages.Restarting:
			fmt.Printf("restart #%d in %v: %v\n", e.Attempt, e.Delay, e.Cause.(*actors.FailureError).Reason)
		case *messages.RestartLimit:
			fmt.Printf("gave up after %d failures\n", e.Failures)
			close(done)
		}
	})
	tree := system.Root.Spawn(actors.NewTree(strategy, actors.Spec{Name: "worker", Props: props}))
	<-done
	actors.StopAndWait(context.Background(), system, tree)
	// Output:
	// restart #1 in 10ms: crashed
	// restart #2 in 20ms: crashed
	// restart #3 in 40ms: crashed
	// gave up after 4 failures
}

// Ask a process actor the moment it is spawned: the Ask is held until the child runs. Once
// the actor has stopped, an Ask fails at once with a typed error.
func ExampleAsk() {
	system := quietSystem()
	defer system.Shutdown()

	cmd, _ := launch.SelfCommand("echo")
	cfg := actors.NewConfig(cmd)
	cfg.Logger = slog.New(slog.DiscardHandler)
	props, _ := actors.NewProcess(cfg)
	pid := system.Root.Spawn(props)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := actors.Ask(ctx, system, pid, "echo", []byte("at once"))
	fmt.Printf("reply: %s, error: %v\n", reply, err)

	actors.StopAndWait(ctx, system, pid)
	_, err = actors.Ask(ctx, system, pid, "echo", []byte("too late"))
	fmt.Println("after the stop:", errors.Is(err, actors.ErrNotRunning))
	// Output:
	// reply: at once, error: <nil>
	// after the stop: true
}

// Supervise a program that does not speak procsup's protocol: a shell script, ready once
// it has started, stopped by SIGTERM; its output lines become log records.
func ExamplePlainConfig() {
	system := quietSystem()
	defer system.Shutdown()

	cfg := actors.NewConfig(&launch.Command{Path: "/bin/sh", Args: []string{"-c",
		`trap 'echo bye; exit 0' TERM; echo hello; while :; do sleep 0.05; done`}})
	cfg.Plain = &actors.PlainConfig{} // or ReadyTCP, ReadyCommand; StopSignal
	lines := make(chan string, 4)
	cfg.Logger = slog.New(lineHandler(lines))
	props, err := actors.NewProcess(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	exited := make(chan *messages.Exited, 1)
	system.EventStream.Subscribe(func(ev any) {
		if ex, ok := ev.(*messages.Exited); ok {
			exited <- ex
		}
	})
	pid := system.Root.Spawn(props)
	fmt.Println("stdout:", <-lines)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = actors.Ask(ctx, system, pid, "resize", nil)
	fmt.Println("ask:", errors.Is(err, actors.ErrNoProtocol))
	system.Root.Send(pid, &messages.Close{})
	ex := <-exited
	fmt.Println("stdout:", <-lines)
	fmt.Printf("exited: %s, exit code %d\n", ex.Reason, ex.ExitCode)
	// Output:
	// stdout: hello
	// ask: true
	// stdout: bye
	// exited: closed on request, exit code 0
}

// lineHandler sends the message of each record of a plain program's stdout (a record
// with "stream": "stdout") to lines. (Its stderr has the shell's own words: a child
// killed by the SIGTERM is "Terminated".)
type lineHandler chan string

func (h lineHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h lineHandler) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "stream" && a.Value.String() == "stdout" {
			h <- r.Message
		}
		return true
	})
	return nil
}
func (h lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineHandler) WithGroup(string) slog.Handler      { return h }
