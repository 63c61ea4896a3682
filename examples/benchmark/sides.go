package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/examples/benchmark/gopluginecho"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// childEnv is every child's environment: this program's, and GOMAXPROCS when
// -child-gomaxprocs sets it (nil: the environment as it is).
var childEnv []string

// A side is one way of running a child: the floor, procsup, go-plugin over net/rpc or
// gRPC.
type side interface {
	name() string
	// start starts a child and returns once it has answered (is ready).
	start() (child, error)
}

// A child is one started child of a side. Its methods are called from one goroutine
// at a time.
type child interface {
	osPid() int
	// ask makes one 16-byte round trip.
	ask(body []byte) error
	// kill SIGKILLs the child and returns once its side knows it ended (reaped, or
	// Exited for procsup).
	kill() error
	// close ends the child gracefully and returns once it has ended.
	close() error
}

// floorSide is the cheapest honest way to do the same job: os/exec starts a static Go
// program (rawminimal, built separately) with one end of a socket pair as descriptor 3;
// it echoes what it reads with blocking reads; the parent writes a frame of procsup's
// protocol and reads it back. Kill is a signal and a wait; close is closing the socket.
type floorSide struct {
	path string
	args []string // after path
	what string   // the name, when not the Go floor's
	// deadline, when set, bounds each round trip: the socket's deadline is set to it
	// before each one, as a caller bounding its request would.
	deadline time.Duration
}

func (s floorSide) name() string {
	if s.what != "" {
		return s.what
	}
	return "floor (raw socket)"
}

type floorChild struct {
	cmd *exec.Cmd
	echoer
}

// echoer is a floor's end of a raw socket to a child that echoes it.
type echoer struct {
	conn     *os.File
	deadline time.Duration // see floorSide
	req      []byte        // the request frame, encoded once
	frame    []byte        // reused for the echo
}

func (s floorSide) start() (child, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	syscall.SetNonblock(fds[0], true) // the parent's end in the netpoller, as a Go program would
	conn, theirs := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "child")
	cmd := exec.Command(s.path, s.args...)
	cmd.Env = childEnv
	cmd.ExtraFiles = []*os.File{theirs}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &floorChild{cmd: cmd, echoer: echoer{conn: conn, deadline: s.deadline}}
	init, _ := wire.Encode(&wire.InitializeRequest{})
	if err := c.echo(init); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

func (c *floorChild) osPid() int { return c.cmd.Process.Pid }

// echo writes frame and reads it back.
func (c *echoer) echo(frame []byte) error {
	if c.deadline > 0 {
		c.conn.SetDeadline(time.Now().Add(c.deadline))
	}
	if _, err := c.conn.Write(frame); err != nil {
		return err
	}
	if cap(c.frame) < len(frame) {
		c.frame = make([]byte, len(frame))
	}
	_, err := io.ReadFull(c.conn, c.frame[:len(frame)])
	return err
}

func (c *echoer) ask(body []byte) error {
	if c.req == nil {
		var err error
		if c.req, err = wire.Encode(&wire.Request{ID: 1, Kind: "echo", Body: body}); err != nil {
			return err
		}
	}
	return c.echo(c.req)
}

func (c *floorChild) kill() error {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	return c.conn.Close()
}

func (c *floorChild) close() error {
	c.conn.Close() // the child exits on EOF
	return c.cmd.Wait()
}

// procsupSide runs each child under a process actor with NewConfig's defaults, asked
// through actors.Ask.
type procsupSide struct {
	system *actor.ActorSystem
	props  *actor.Props
	what   string // the name, when not "procsup"
	prefix string // of its actors' names ("w" when empty), which are prefix1, prefix2...
	// adopted: each start adopts the process an earlier program left under the name,
	// and fails if the actor started one instead.
	adopted bool
	n       atomic.Int64
	// waiting holds each actor's event channel by its name.
	waiting sync.Map
}

func newProcsupSide(system *actor.ActorSystem, props *actor.Props) *procsupSide {
	p := &procsupSide{system: system, props: props}
	system.EventStream.Subscribe(func(ev any) {
		var pid *actor.PID
		switch e := ev.(type) {
		case *messages.StateChanged:
			if e.To != messages.Running {
				return
			}
			pid = e.PID
		case *messages.Exited:
			pid = e.PID
		default:
			return
		}
		if ch, ok := p.waiting.Load(pid.Id); ok {
			ch.(chan any) <- ev // at most a Running and an Exited each: never blocks
		}
	})
	return p
}

func (s *procsupSide) name() string {
	if s.what != "" {
		return s.what
	}
	return "procsup"
}

type procsupChild struct {
	side   *procsupSide
	pid    *actor.PID
	os     int
	events chan any
}

func (p *procsupSide) start() (child, error) {
	prefix := p.prefix
	if prefix == "" {
		prefix = "w"
	}
	name := fmt.Sprintf("%s%d", prefix, p.n.Add(1))
	events := make(chan any, 4)
	p.waiting.Store(name, events)
	pid, err := p.system.Root.SpawnNamed(p.props, name)
	if err != nil {
		return nil, err
	}
	c := &procsupChild{side: p, pid: pid, events: events}
	switch e := (<-events).(type) {
	case *messages.StateChanged:
		c.os = e.OSPid
		if p.adopted {
			st, err := p.system.Root.RequestFuture(pid, &messages.GetStatus{}, 10*time.Second).Result()
			if err != nil || !st.(*messages.Status).Adopted {
				c.close()
				return nil, fmt.Errorf("%s was not adopted (%v)", name, err)
			}
		}
		return c, nil
	case *messages.Exited:
		c.forget()
		return nil, fmt.Errorf("procsup child ended before it ran: %v %v", e.Reason, e.Err)
	}
	panic("unreachable")
}

func (c *procsupChild) osPid() int { return c.os }

func (c *procsupChild) ask(body []byte) error {
	_, err := actors.Ask(context.Background(), c.side.system, c.pid, "echo", body)
	return err
}

// deadlineSide is procsup's side asked with a ctx of a 1 s deadline, made for each Ask.
type deadlineSide struct{ *procsupSide }

func (deadlineSide) name() string { return "procsup, 1 s deadline" }

func (d deadlineSide) start() (child, error) {
	c, err := d.procsupSide.start()
	if err != nil {
		return nil, err
	}
	return deadlineChild{c.(*procsupChild)}, nil
}

type deadlineChild struct{ *procsupChild }

func (c deadlineChild) ask(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := actors.Ask(ctx, c.side.system, c.pid, "echo", body)
	return err
}

// exited waits for the actor's Exited, then for the actor to stop.
func (c *procsupChild) exited() error {
	for ev := range c.events {
		if _, ok := ev.(*messages.Exited); ok {
			break
		}
	}
	c.forget()
	return nil
}

func (c *procsupChild) forget() {
	actors.StopAndWait(context.Background(), c.side.system, c.pid)
	c.side.waiting.Delete(c.pid.Id)
}

func (c *procsupChild) kill() error {
	syscall.Kill(c.os, syscall.SIGKILL)
	return c.exited()
}

func (c *procsupChild) close() error {
	c.side.system.Root.Send(c.pid, &messages.Close{Reason: "benchmark"})
	return c.exited()
}

// pluginSide runs the echo plugin under hashicorp/go-plugin, over net/rpc or gRPC.
type pluginSide struct {
	path string
	grpc bool
}

func (s pluginSide) name() string {
	if s.grpc {
		return "go-plugin gRPC"
	}
	return "go-plugin net/rpc"
}

type pluginChild struct {
	client *plugin.Client
	echo   gopluginecho.Echo
	pid    int
}

func (s pluginSide) start() (child, error) {
	cfg := &plugin.ClientConfig{
		HandshakeConfig: gopluginecho.Handshake,
		Plugins:         map[string]plugin.Plugin{"echo": &gopluginecho.Plugin{}},
		Cmd:             exec.Command(s.path),
		Logger:          hclog.NewNullLogger(),
		Managed:         true, // killed by plugin.CleanupClients on an interrupt
	}
	if s.grpc {
		cfg.Plugins = map[string]plugin.Plugin{"echo": &gopluginecho.GRPCPlugin{}}
		cfg.Cmd = exec.Command(s.path, "grpc")
		cfg.AllowedProtocols = []plugin.Protocol{plugin.ProtocolGRPC}
	}
	cfg.Cmd.Env = childEnv
	client := plugin.NewClient(cfg)
	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, err
	}
	raw, err := rpcClient.Dispense("echo")
	if err != nil {
		client.Kill()
		return nil, err
	}
	return &pluginChild{client: client, echo: raw.(gopluginecho.Echo), pid: client.ReattachConfig().Pid}, nil
}

func (c *pluginChild) osPid() int { return c.pid }

func (c *pluginChild) ask(body []byte) error {
	out, err := c.echo.Echo(body)
	if err == nil && len(out) != len(body) {
		err = errors.New("go-plugin echoed another body")
	}
	return err
}

func (c *pluginChild) kill() error {
	syscall.Kill(c.pid, syscall.SIGKILL)
	for !c.client.Exited() {
		time.Sleep(20 * time.Microsecond) // go-plugin says so only when asked
	}
	c.client.Kill() // its connections and goroutines
	return nil
}

func (c *pluginChild) close() error {
	c.client.Kill() // graceful: asks the plugin to exit, kills it after 2 s
	return nil
}
