package actors

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// Spec is one child of a [Tree]: a name and the props to spawn it with (a process
// actor's, from [NewProcess], or any actor's, another Tree's included).
type Spec struct {
	Name  string
	Props *actor.Props
}

// NewTree returns the props of a supervisor actor that spawns specs as its children,
// named so (its PID id, "/", the name), under strategy (NewStrategy(DefaultBackoff) when
// nil). It forwards its children's events, and its strategy's Restarting and
// RestartLimit, to its own parent, so trees nest and a user actor that spawns a tree hears
// everything below it. A Close or Kill sent to a tree goes to each of its children (and
// down through nested trees): every process below ends, and the tree stays, empty. Ask,
// Send and GetStatus are for process actors: a tree answers them with ErrNotProcess.
//
// protoactor ignores WithSupervisor on an actor spawned from system.Root, but a Tree
// supervises its own children, so spawning the Tree itself from system.Root is fine:
//
//	tree := system.Root.Spawn(actors.NewTree(nil, specs...))
//	defer actors.StopAndWait(ctx, system, tree)
func NewTree(strategy actor.SupervisorStrategy, specs ...Spec) *actor.Props {
	if strategy == nil {
		strategy = NewStrategy(DefaultBackoff)
	}
	starting := &sync.Map{} // a spawned tree's id -> chan closed once its children are spawned
	// Spawning a tree returns once its Started has spawned the children: a message sent to
	// a child's PID (ChildPID) right after spawning the tree finds the child.
	spawn := func(system *actor.ActorSystem, id string, props *actor.Props, parent actor.SpawnerContext) (*actor.PID, error) {
		ready := make(chan struct{})
		starting.Store(id, ready)
		pid, err := actor.DefaultSpawner(system, id, props, parent)
		if err != nil {
			starting.Delete(id)
			return pid, err
		}
		<-ready
		return pid, nil
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &tree{specs: specs, starting: starting, failed: map[string]bool{}, again: map[string]bool{}}
	},
		actor.WithSupervisor(strategy), actor.WithMailbox(lateMailbox(forwardStopped, nil, false)), actor.WithSpawnFunc(spawn))
}

// tree is one spawned tree: its specs, the channels its props' spawners wait on, and the
// children its strategy gave up on.
type tree struct {
	specs    []Spec
	starting *sync.Map
	failed   map[string]bool // by name: stopped by the restart limit, until they run again
	again    map[string]bool // by name: stopped by a RestartChild, to spawn again when gone
	stopping bool
}

// Receive spawns the children, passes Close and Kill down to them, refuses the commands
// only a process takes, and forwards every event (those of the actors below, the
// strategy's Restarting and RestartLimit) to the parent.
func (t *tree) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		t.spawnChildren(ctx)
		if ready, ok := t.starting.LoadAndDelete(ctx.Self().Id); ok {
			close(ready.(chan struct{}))
		}
	case *actor.Terminated:
		if name, ok := strings.CutPrefix(m.Who.GetId(), ctx.Self().Id+"/"); ok && t.again[name] && !t.stopping {
			delete(t.again, name)
			t.spawnChildren(ctx, name)
		}
	case *actor.Stopping:
		t.stopping = true
	case *actor.Stopped, *actor.Restarting:
	case *messages.Close, *messages.Kill:
		for _, child := range ctx.Children() {
			ctx.Send(child, m)
		}
	case *messages.Ask, *messages.Send, *messages.GetStatus:
		if ctx.Sender() != nil {
			ctx.Respond(&messages.Response{Err: fmt.Errorf("%w: %s is a tree", ErrNotProcess, ctx.Self().Id)})
		}
	case *messages.GetSnapshot:
		ctx.Respond(t.info(ctx))
	case *messages.Respawn:
		t.spawnChildren(ctx, m.Names...)
	case *messages.RestartChild:
		t.restartChild(ctx, m.Name)
	case messages.Event:
		t.note(ctx, m)
		if ctx.Parent() != nil {
			ctx.Send(ctx.Parent(), m)
		}
	}
}

// note keeps track of the children the strategy gave up on: from their RestartLimit
// until they run again.
func (t *tree) note(ctx actor.Context, ev messages.Event) {
	name, ok := strings.CutPrefix(ev.Actor().GetId(), ctx.Self().Id+"/")
	if !ok || strings.Contains(name, "/") {
		return // not about a child of this tree
	}
	switch e := ev.(type) {
	case *messages.RestartLimit:
		t.failed[name] = true
	case *messages.StateChanged:
		if e.To == messages.Running {
			delete(t.failed, name)
		}
	}
}

// info is the tree's answer to GetSnapshot: its children in the order of its specs.
func (t *tree) info(ctx actor.Context) *messages.TreeInfo {
	live := map[string]bool{}
	for _, c := range ctx.Children() {
		live[c.Id] = true
	}
	info := &messages.TreeInfo{}
	for _, s := range t.specs {
		pid := ChildPID(ctx.Self(), s.Name)
		if live[pid.Id] {
			info.Children = append(info.Children, pid)
		}
		switch {
		case t.failed[s.Name]:
			info.Failed = append(info.Failed, s.Name)
		case !live[pid.Id]:
			info.Stopped = append(info.Stopped, s.Name)
		}
	}
	return info
}

// restartChild stops the child named name (a graceful close for a process actor) and
// spawns it again once it is gone; a child that is not there is spawned at once.
func (t *tree) restartChild(ctx actor.Context, name string) {
	pid := ChildPID(ctx.Self(), name)
	if !slices.ContainsFunc(t.specs, func(s Spec) bool { return s.Name == name }) {
		ctx.Logger().Warn("procsup: tree has no child of that name to restart", "tree", ctx.Self().Id, "name", name)
		return
	}
	if !slices.ContainsFunc(ctx.Children(), func(c *actor.PID) bool { return c.Id == pid.Id }) {
		t.spawnChildren(ctx, name)
		return
	}
	t.again[name] = true
	ctx.Stop(pid)
}

// spawnChildren spawns each spec that has no child yet (of those named, if any are).
func (t *tree) spawnChildren(ctx actor.Context, names ...string) {
	have := map[string]bool{}
	for _, c := range ctx.Children() {
		have[c.Id] = true
	}
	for _, s := range t.specs {
		if have[ChildPID(ctx.Self(), s.Name).Id] || len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		if _, err := ctx.SpawnNamed(s.Props, s.Name); err != nil {
			ctx.Logger().Error("procsup: tree could not spawn a child", "name", s.Name, "error", err)
		}
	}
}

// ChildPID returns the PID of the child named name of parent (a Tree's, say).
func ChildPID(parent *actor.PID, name string) *actor.PID {
	return actor.NewPID(parent.Address, parent.Id+"/"+name)
}

// StopAndWait stops the actor pid and waits until it has terminated (for a process
// actor: until its process is reaped; for a tree: until everything below it is), or
// until ctx is done. Unlike StopFuture it has no fixed 10 s limit.
func StopAndWait(ctx context.Context, system *actor.ActorSystem, pid *actor.PID) error {
	if _, ok := system.ProcessRegistry.Get(pid); !ok {
		return nil // stopped already
	}
	done := make(chan struct{})
	watcher := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			// Watch before Stop, from one sender, so the watch is in place before the
			// target starts stopping (a watch that arrives while it stops is answered
			// at once, before it has finished).
			c.Watch(pid)
			c.Stop(pid)
		case *actor.Terminated:
			if m.Who.Equal(pid) {
				close(done)
				c.Stop(c.Self())
			}
		}
	}))
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		system.Root.Stop(watcher)
		return fmt.Errorf("procsup: waiting for %s to stop: %w", pid.Id, ctx.Err())
	}
}
