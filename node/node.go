package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/hashicorp/memberlist"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages/wire"
	"google.golang.org/grpc"
)

// AgentName is the name of every node's agent actor: a node's agent is
// actor.NewPID(its remote address, AgentName).
const AgentName = "procsup-agent"

// Node is one member of a procsup cluster: an actor system with protoactor's remote, a
// memberlist member, and an agent that runs workers from its registered specs. Start
// makes one; Close ends it.
type Node struct {
	cfg    Config
	system *actor.ActorSystem
	ownSys bool
	remote *remote.Remote
	list   *memberlist.Memberlist
	agent  *actor.PID
	log    *slog.Logger

	// mu guards what follows. memberlist calls the node (NodeMeta, NotifyJoin...) with
	// its own locks held: never call memberlist while holding mu.
	mu       sync.Mutex
	self     meta
	peers    map[string]*peer                 // live peers by name, this node included
	watchers map[string]map[string]*actor.PID // node name -> proxy id -> proxy, placed there
	closed   bool
	refused  sync.Map // refusals logged already
	// memberAddr is this node's membership address, copied when membership started.
	memberAddr string
	// lost are the members lost and not back, by name: their membership address and when
	// they were lost, for the reconnector.
	lost map[string]lostMember
	// maxBody is the largest body a message between nodes carries: the largest frame cap
	// of the workers (wire.DefaultMaxFrame, or a spec's larger MaxFrame).
	maxBody int

	publish chan struct{} // a new load to publish in membership (coalesced)
	stop    chan struct{}
	done    sync.WaitGroup
}

// peer is a live node as this node sees it.
type peer struct {
	name    string
	meta    meta
	pending int       // placements sent there and not answered yet
	suspect time.Time // when a connection to it ended (zero: none since it was last seen)
	heard   time.Time // when membership last brought its metadata
}

// suspectFor is how long a node whose connection ended gets no placement, unless
// membership says it is alive (an update) or dead (it is removed) before.
const suspectFor = 10 * time.Second

// Member describes a live node, for Members.
type Member struct {
	Name   string
	Remote string // its remote address (its agent: actor.NewPID(Remote, AgentName))
	Specs  []string
	Load   Load
	Schema int // its schema version (nodepb.SchemaVersion of its build): Members lists only this node's
	// Heard is when membership last brought its metadata (its load changes it); now
	// for this node.
	Heard time.Time
}

// Start starts a node: remote, its agent, membership, and joins cfg.Join. Its errors wrap
// ErrBadConfig or ErrStartFailed. ctx bounds the join.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Name), peers: map[string]*peer{},
		watchers: map[string]map[string]*actor.PID{}, publish: make(chan struct{}, 1), stop: make(chan struct{})}
	n.system = cfg.System
	if n.system != nil {
		if _, started := n.system.Extensions.Get((&remote.Remote{}).ExtensionID()).(*remote.Remote); started {
			return nil, fmt.Errorf("%w: Config.System has remote started already (one node per actor system)", ErrBadConfig)
		}
	} else {
		n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return cfg.Logger }))
		n.ownSys = true
	}
	n.maxBody = wire.DefaultMaxFrame
	for s, spec := range cfg.Specs {
		n.self.Specs = append(n.self.Specs, s)
		n.maxBody = max(n.maxBody, spec.MaxFrame)
	}
	sort.Strings(n.self.Specs)
	n.self.Schema = cfg.schema
	if err := n.startRemote(); err != nil {
		return nil, err
	}
	n.self.Remote = n.system.Address()
	n.self.Boot = newBoot()
	n.self.Load.FreeMB = freeMB()
	if b, _ := json.Marshal(n.self); len(b) > metaLimit {
		n.stopRemote(ctx)
		return nil, fmt.Errorf("%w: the spec names take %d bytes of membership metadata, more than its %d", ErrBadConfig, len(b), metaLimit)
	}
	n.peers[cfg.Name] = &peer{name: cfg.Name, meta: n.self}
	n.agent, err = n.system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return newAgent(n) }), AgentName)
	if err != nil {
		n.stopRemote(ctx)
		return nil, fmt.Errorf("%w: agent: %w", ErrStartFailed, err)
	}
	if err := n.startMembership(ctx); err != nil {
		n.stopAgent(ctx)
		n.stopRemote(ctx)
		return nil, err
	}
	n.done.Add(1)
	go n.publisher()
	if n.cfg.ReconnectInterval > 0 {
		n.done.Add(1)
		go n.reconnector()
	}
	n.log.Info("node started", "remote", n.self.Remote, "membership", n.MemberAddr(), "specs", n.self.Specs)
	return n, nil
}

// envelopeRoom is what a message between nodes may carry beside its body: the largest
// gRPC message is maxBody plus this.
const envelopeRoom = 1 << 20

// startRemote starts protoactor's remote on the configured host and port. remote.Start
// panics when it cannot listen: that becomes an error, after a listen of our own shows
// the port is free or not.
func (n *Node) startRemote() (err error) {
	addr := net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.cfg.RemotePort))
	if n.cfg.RemotePort != 0 {
		l, lerr := net.Listen("tcp", addr)
		if lerr != nil {
			return fmt.Errorf("%w: remote: %w", ErrStartFailed, lerr)
		}
		l.Close()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: remote on %s: %v", ErrStartFailed, addr, r)
		}
	}()
	rc := remote.Configure(n.cfg.Host, n.cfg.RemotePort, n.cfg.RemoteOptions...)
	// gRPC's own limit (4 MiB to receive) would break the stream that carried a larger
	// message, and with it every worker on that connection: the limit between nodes is
	// the largest frame a worker takes, with room for the envelope.
	limit := n.maxBody + envelopeRoom
	rc.ServerOptions = append(rc.ServerOptions, grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit))
	rc.DialOptions = append(rc.DialOptions,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit)))
	rc.CallOptions = append(rc.CallOptions, grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit))
	// One connection attempt per endpoint: each retry of protoactor's endpoint writer
	// dials a new gRPC connection and never closes the one before, which then reconnects
	// forever to a dead node. A failed endpoint is dropped, and the next message to that
	// address makes a new one.
	rc.MaxRetryCount = 1
	n.remote = remote.NewRemote(n.system, rc)
	n.remote.Start()
	return nil
}

// startMembership creates the memberlist member and joins the configured nodes.
func (n *Node) startMembership(ctx context.Context) error {
	mc := memberlist.DefaultLocalConfig()
	mc.Name = n.cfg.Name
	mc.BindAddr, mc.BindPort = n.cfg.Host, n.cfg.MemberPort
	mc.AdvertisePort = n.cfg.MemberPort
	d := &membership{n: n}
	mc.Delegate, mc.Events, mc.Alive, mc.Merge = d, d, d, d
	mc.Logger = slog.NewLogLogger(n.log.With("in", "memberlist").Handler(), slog.LevelDebug)
	if len(n.cfg.MembershipKey) > 0 {
		mc.SecretKey = n.cfg.MembershipKey
	}
	if n.cfg.Membership != nil {
		n.cfg.Membership(mc)
	}
	list, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("%w: membership: %w", ErrStartFailed, err)
	}
	// memberlist rewrites its local node when it publishes new metadata (UpdateNode):
	// keep a copy of the address, read before anything is published.
	l := list.LocalNode()
	addr := net.JoinHostPort(l.Addr.String(), strconv.Itoa(int(l.Port)))
	n.mu.Lock()
	n.list, n.memberAddr = list, addr
	n.mu.Unlock()
	if len(n.cfg.Join) == 0 {
		return nil
	}
	joined := make(chan error, 1)
	go func() {
		_, err := list.Join(n.cfg.Join)
		joined <- err
	}()
	select {
	case err = <-joined:
	case <-ctx.Done():
		err = ctx.Err()
		<-joined // memberlist's own timeouts (TCPTimeout per address) end it
	}
	if err != nil {
		list.Shutdown()
		// memberlist's error lists each address's on its own line: one line here
		return fmt.Errorf("%w: joining %v: %s", ErrStartFailed, n.cfg.Join, strings.Join(strings.Fields(err.Error()), " "))
	}
	return nil
}

// System is the node's actor system: spawn proxies (NewProcess) in it.
func (n *Node) System() *actor.ActorSystem { return n.system }

// Name is the node's name in membership.
func (n *Node) Name() string { return n.cfg.Name }

// Address is the node's remote address.
func (n *Node) Address() string { return n.self.Remote }

// Agent is the node's agent actor.
func (n *Node) Agent() *actor.PID { return n.agent }

// MemberAddr is the node's membership address, for another node's Config.Join.
func (n *Node) MemberAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.memberAddr
}

// Members lists the live nodes of this node's schema version, this one included, by name.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.peers))
	for _, p := range n.peers {
		heard := p.heard
		if p.name == n.cfg.Name {
			heard = time.Now()
		}
		out = append(out, Member{Name: p.name, Remote: p.meta.Remote, Specs: p.meta.Specs, Load: p.meta.Load,
			Schema: p.meta.Schema, Heard: heard})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close ends the node: its workers are closed (gracefully, within their specs'
// CloseTimeout, then killed), it leaves membership, and remote stops. Stop the proxies
// spawned on this node before: a proxy of a closed node loses its workers. ctx bounds the
// wait for the workers; when it ends first, Close still leaves membership and stops remote
// and returns ctx.Err().
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	err := n.stopAgent(ctx)
	close(n.stop)
	n.done.Wait()
	if lerr := n.list.Leave(time.Second); lerr != nil {
		n.log.Debug("leaving membership", "err", lerr)
	}
	if serr := n.list.Shutdown(); serr != nil && err == nil {
		err = serr
	}
	n.stopRemote(ctx)
	if n.ownSys {
		n.system.Shutdown()
	}
	n.log.Info("node closed")
	return err
}

// stopRemote stops protoactor's remote. Its own graceful Shutdown writes flags that its
// stream handlers read without synchronization (a data race under -race) and waits up to
// 10 s for peers to close their streams; instead its gRPC server is stopped at once,
// which ends every stream, and then the actors of its endpoint manager (the endpoint
// supervisor with every connection's writer and watcher, and the activator).
func (n *Node) stopRemote(ctx context.Context) {
	n.remote.Shutdown(false)
	for _, name := range []string{"EndpointSupervisor", "activator"} {
		if err := actors.StopAndWait(ctx, n.system, actor.NewPID(n.system.Address(), name)); err != nil {
			n.log.Debug("stopping remote", "actor", name, "err", err)
		}
	}
}

// stopAgent stops the agent, and with it every host and worker, and waits.
func (n *Node) stopAgent(ctx context.Context) error {
	return actors.StopAndWait(ctx, n.system, n.agent)
}

// setLoad records this node's load, has it published in membership when it changed, and
// returns it.
func (n *Node) setLoad(workers, starting int) Load {
	n.mu.Lock()
	if n.self.Load.Workers == workers && n.self.Load.Starting == starting {
		defer n.mu.Unlock()
		return n.self.Load
	}
	n.self.Load.Workers, n.self.Load.Starting = workers, starting
	n.self.Load.Seq++
	n.self.Load.FreeMB = freeMB()
	if p := n.peers[n.cfg.Name]; p != nil {
		p.meta = n.self
	}
	l := n.self.Load
	n.mu.Unlock()
	select {
	case n.publish <- struct{}{}:
	default:
	}
	return l
}

// publisher broadcasts the node's metadata when its load changes. UpdateNode waits for
// the broadcast, so it runs here rather than in the agent.
func (n *Node) publisher() {
	defer n.done.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.publish:
			if err := n.list.UpdateNode(time.Second); err != nil {
				n.log.Debug("publishing load", "err", err)
			}
		}
	}
}

// lostMember is a member the node lost: where to join it again, and since when.
type lostMember struct {
	addr string
	at   time.Time
}

// reconnector joins the lost members again every ReconnectInterval, as Serf's reconnect
// does: a member that declared this one dead, and that this one declared dead, stop
// gossiping to each other; a join after the partition merges them again.
func (n *Node) reconnector() {
	defer n.done.Done()
	t := time.NewTicker(n.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.mu.Lock()
		var addrs []string
		for name, l := range n.lost {
			switch {
			case n.peers[name] != nil: // back already
				delete(n.lost, name)
			case time.Since(l.at) > n.cfg.ReconnectTimeout:
				delete(n.lost, name)
			default:
				addrs = append(addrs, l.addr)
			}
		}
		n.mu.Unlock()
		if len(addrs) == 0 {
			continue
		}
		if joined, err := n.list.Join(addrs); err != nil && joined == 0 {
			n.log.Debug("rejoining lost members", "members", len(addrs), "err", err)
		}
	}
}

// metaBytes is this node's metadata for membership.
func (n *Node) metaBytes() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, _ := json.Marshal(n.self)
	return b
}

// place chooses the node for a worker of spec (pinned to the node named pin, when not
// empty) and counts the placement as pending there until placed is called.
func (n *Node) place(spec, pin string) (name string, m meta, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var best *peer
	for _, p := range n.peers {
		if (pin != "" && p.name != pin) || !slices.Contains(p.meta.Specs, spec) || time.Since(p.suspect) < suspectFor {
			continue
		}
		if best == nil || less(p, best) {
			best = p
		}
	}
	if best == nil {
		if pin != "" {
			return "", meta{}, fmt.Errorf("%w: node %q is not live or has no spec %q", ErrNoNode, pin, spec)
		}
		return "", meta{}, fmt.Errorf("%w: none offers spec %q", ErrNoNode, spec)
	}
	best.pending++
	return best.name, best.meta, nil
}

// less orders candidates: fewest workers (placements pending included), then fewest
// starting, then most free memory, then by name.
func less(a, b *peer) bool {
	wa, wb := a.meta.Load.Workers+a.pending, b.meta.Load.Workers+b.pending
	if wa != wb {
		return wa < wb
	}
	sa, sb := a.meta.Load.Starting+a.pending, b.meta.Load.Starting+b.pending
	if sa != sb {
		return sa < sb
	}
	if a.meta.Load.FreeMB != b.meta.Load.FreeMB {
		return a.meta.Load.FreeMB > b.meta.Load.FreeMB
	}
	return a.name < b.name
}

// placed ends a pending placement on the node named name, with the load its agent
// reported in its answer (nil when it did not answer).
func (n *Node) placed(name string, l *Load) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[name]
	if p == nil {
		return
	}
	if p.pending > 0 {
		p.pending--
	}
	if l != nil && l.Seq > p.meta.Load.Seq && name != n.cfg.Name {
		p.meta.Load = *l
	}
}

// suspected records that the connection to the node named name ended: it gets no
// placement for a while, so that replacements do not go back to a node that is dead
// and not yet declared so.
func (n *Node) suspected(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[name]; p != nil && name != n.cfg.Name {
		p.suspect = time.Now()
	}
}

// watch registers proxy as placed on the node named name: it hears of that node's loss.
// It reports false when that node is not live (any more).
func (n *Node) watch(name string, proxy *actor.PID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.peers[name] == nil {
		return false
	}
	w := n.watchers[name]
	if w == nil {
		w = map[string]*actor.PID{}
		n.watchers[name] = w
	}
	w[proxy.Id] = proxy
	return true
}

// unwatch undoes watch.
func (n *Node) unwatch(name string, proxy *actor.PID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if w := n.watchers[name]; w != nil {
		delete(w, proxy.Id)
		if len(w) == 0 {
			delete(n.watchers, name)
		}
	}
}

// holders lists the remote addresses of the other live nodes where this node's proxies
// have placed workers.
func (n *Node) holders() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name, w := range n.watchers {
		if p := n.peers[name]; p != nil && len(w) > 0 && name != n.cfg.Name {
			out = append(out, p.meta.Remote)
		}
	}
	return out
}

// errClosed answers a StartWorker that comes while the node closes.
var errClosed = errors.New("procsup/node: node closed")
