package actors_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// echoConfig is a process actor's config for the smallest procsup child
// (childproctest.Minimal, built separately as users build theirs: it echoes every
// request), quiet and temporary.
func echoConfig(b *testing.B) actors.Config {
	cfg := actors.NewConfig(&launch.Command{Path: childproctest.Build(b, childproctest.Minimal)})
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Restart = actors.Temporary
	return cfg
}

// BenchmarkSpawnToReady: a process actor spawned until it reports running, its child the
// smallest procsup child (childproctest.Minimal, built separately as users build theirs).
// The floor, timed in the same loop: the smallest Go child that answers over a raw socket
// (childproctest.RawMinimal), started until it echoes one frame. x-floor is their ratio.
func BenchmarkSpawnToReady(b *testing.B) {
	minimal := childproctest.Build(b, childproctest.Minimal)
	raw := childproctest.Build(b, childproctest.RawMinimal)
	cfg := echoConfig(b)
	cfg.Launcher = &launch.Command{Path: minimal}
	spawnToReady(b, cfg, func() time.Duration { return childproctest.ReadyRaw(b, raw) })
}

// BenchmarkSpawnToReadySelf: the same with this test binary as the child (10 MB, every
// package of the module linked), against itself as a raw echo child.
func BenchmarkSpawnToReadySelf(b *testing.B) {
	cmd, err := launch.SelfCommand("echo")
	if err != nil {
		b.Fatal(err)
	}
	cfg := echoConfig(b)
	cfg.Launcher = cmd
	spawnToReady(b, cfg, func() time.Duration { return spawnRawOnce(b, "") })
}

// spawnToReady times process actors for cfg from spawn to running, and floor in the
// same loop; ns/op is the actor's time.
func spawnToReady(b *testing.B, cfg actors.Config, floor func() time.Duration) {
	system := actors.QuietSystem(b)
	props, err := actors.NewProcess(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ready := readyEvents(system)
	floor() // the page cache warm
	var floors time.Duration
	b.ResetTimer()
	for range b.N {
		pid := system.Root.Spawn(props)
		<-ready
		b.StopTimer()
		actors.StopAndWait(context.Background(), system, pid)
		floors += floor()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed())/float64(floors), "x-floor")
	b.ReportMetric(float64(floors.Microseconds())/float64(b.N)/1000, "floor-ms")
}

// readyEvents returns a channel that gets the PID of each process actor of system that
// reports running (the actor system's end ends the subscription).
func readyEvents(system *actor.ActorSystem) <-chan *actor.PID {
	ready := make(chan *actor.PID, 1)
	system.EventStream.Subscribe(func(ev any) {
		if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
			ready <- sc.PID
		}
	})
	return ready
}

// BenchmarkFloorSpawnToReady: plain exec of the floor child (childproctest.RawMinimal)
// with a socket pair, until one frame is echoed back. No actors, no codec.
func BenchmarkFloorSpawnToReady(b *testing.B) {
	raw := childproctest.Build(b, childproctest.RawMinimal)
	b.ResetTimer()
	for range b.N {
		spawnRawOnce(b, raw)
	}
}

// rawChild is a raw echo child started by plain exec (os/exec), with the parent's end of
// its socket pair: the floor of the benchmarks.
type rawChild struct {
	cmd  *exec.Cmd
	conn *os.File
}

// startRaw starts the raw echo program at path (childproctest.RawMinimal, built; "" for
// this test binary as one) with env added to its environment.
func startRaw(tb testing.TB, path string, env ...string) rawChild {
	exe := path
	if path == "" {
		exe, _ = os.Executable()
		env = append(env, childproctest.EnvRawEcho+"=1")
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	syscall.SetNonblock(fds[0], true) // in the netpoller, like procsup's sockets
	parent, child := os.NewFile(uintptr(fds[0]), "p"), os.NewFile(uintptr(fds[1]), "c")
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	child.Close()
	return rawChild{cmd: cmd, conn: parent}
}

// echo sends the child one frame and reads it back.
func (k rawChild) echo() {
	frame, _ := wire.Encode(&wire.InitializeRequest{})
	k.conn.Write(frame)
	io.ReadFull(k.conn, make([]byte, len(frame)))
}

// end closes the child's socket, on which it exits, and reaps it.
func (k rawChild) end() {
	k.conn.Close()
	k.cmd.Wait()
}

// spawnRawOnce starts the raw echo child, echoes one frame, and ends it; it returns the
// time to the echo.
func spawnRawOnce(tb testing.TB, path string) time.Duration {
	began := time.Now()
	k := startRaw(tb, path)
	k.echo()
	d := time.Since(began)
	k.end()
	return d
}

// killRawOnce starts a raw echo child, waits for its first echo, and returns the time
// from its SIGKILL until os/exec has reaped it: the floor of a crash's report.
func killRawOnce(tb testing.TB, path string) time.Duration {
	k := startRaw(tb, path)
	k.echo()
	began := time.Now()
	k.cmd.Process.Kill()
	k.cmd.Wait()
	d := time.Since(began)
	k.conn.Close()
	return d
}

// BenchmarkRequestReply: actors.Ask from outside the actor to a running child and back,
// with a ctx without deadline and with a 1 s deadline. Each iteration also times one round trip of the floor (the request's bytes
// echoed by a raw child), interleaved so both see the same machine; ns/op counts the
// Ask alone and x-floor is the ratio of the two sums.
func BenchmarkRequestReply(b *testing.B) {
	floor := requestFloor(b)
	system := actors.QuietSystem(b)
	props, _ := actors.NewProcess(echoConfig(b))
	ready := make(chan struct{}, 1)
	sub := system.EventStream.Subscribe(func(ev any) {
		if sc, ok := ev.(*messages.StateChanged); ok && sc.To == messages.Running {
			ready <- struct{}{}
		}
	})
	pid := system.Root.Spawn(props)
	<-ready
	system.EventStream.Unsubscribe(sub)
	defer actors.StopAndWait(context.Background(), system, pid)
	body := []byte("ping")
	for _, deadline := range []time.Duration{0, time.Second} {
		name := "ctx=background"
		if deadline > 0 {
			name = "ctx=deadline-1s"
		}
		b.Run(name, func(b *testing.B) {
			var asks, floors time.Duration
			for range b.N {
				began := time.Now()
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if deadline > 0 {
					ctx, cancel = context.WithTimeout(ctx, deadline)
				}
				_, err := actors.Ask(ctx, system, pid, "echo", body)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				asks += time.Since(began)
				b.StopTimer()
				floors += floor.RoundTrip()
				b.StartTimer()
			}
			b.ReportMetric(float64(asks)/float64(floors), "x-floor")
		})
	}
}

// BenchmarkFloorRoundTrip: the request's bytes echoed by a raw child over a socket pair.
func BenchmarkFloorRoundTrip(b *testing.B) {
	floor := requestFloor(b)
	b.ResetTimer()
	for range b.N {
		floor.RoundTrip()
	}
}

// requestFloor is the floor of BenchmarkRequestReply: the request's bytes echoed
// unparsed.
func requestFloor(b *testing.B) *childproctest.EchoFloor {
	frame, _ := wire.Encode(&wire.Request{ID: 1, Kind: "echo", Body: []byte("ping")})
	return childproctest.NewEchoFloor(b, frame)
}

// BenchmarkSpawnToReadyCgroup: a process actor for the smallest procsup child
// (childproctest.Minimal) from spawn to running, in a cgroup of its own; each iteration
// also times the same actor without a cgroup, interleaved so both see the same machine.
// x-nocgroup is their ratio; stop-ms and stop-nocgroup-ms time the endings (with a
// cgroup: cgroup.kill, the wait until it is empty, its removal).
func BenchmarkSpawnToReadyCgroup(b *testing.B) {
	minimal := childproctest.Build(b, childproctest.Minimal)
	cg := childproctest.Cgroups(b)
	system := actors.QuietSystem(b)
	cfg := echoConfig(b)
	cfg.Launcher = &launch.Command{Path: minimal}
	plain, err := actors.NewProcess(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Cgroups = cg
	contained, err := actors.NewProcess(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ready := readyEvents(system)
	once := func(props *actor.Props) (up, down time.Duration) {
		began := time.Now()
		pid := system.Root.Spawn(props)
		<-ready
		up = time.Since(began)
		began = time.Now()
		actors.StopAndWait(context.Background(), system, pid)
		return up, time.Since(began)
	}
	once(contained) // the page cache and the session warm
	once(plain)
	var with, without, stopWith, stopWithout time.Duration
	b.ResetTimer()
	for range b.N {
		up, down := once(contained)
		with, stopWith = with+up, stopWith+down
		up, down = once(plain)
		without, stopWithout = without+up, stopWithout+down
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(with)/float64(without), "x-nocgroup")
	b.ReportMetric(float64(with.Microseconds())/n/1000, "cgroup-ms")
	b.ReportMetric(float64(without.Microseconds())/n/1000, "nocgroup-ms")
	b.ReportMetric(float64(stopWith.Microseconds())/n/1000, "stop-ms")
	b.ReportMetric(float64(stopWithout.Microseconds())/n/1000, "stop-nocgroup-ms")
}
