package node

import (
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// membership is the node's memberlist delegate: its metadata out, peers' in, and the
// schema check that refuses a peer of another version before anything is sent to it.
// memberlist calls it from its own goroutines; it never blocks.
type membership struct{ n *Node }

// NodeMeta implements memberlist.Delegate.
func (d *membership) NodeMeta(int) []byte { return d.n.metaBytes() }

// NotifyMsg implements memberlist.Delegate: procsup sends no user messages there.
func (d *membership) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (d *membership) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *membership) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *membership) MergeRemoteState([]byte, bool) {}

// NotifyAlive implements memberlist.AliveDelegate: a peer of another schema version (or
// unreadable metadata) is refused, so it never becomes a member.
func (d *membership) NotifyAlive(peer *memberlist.Node) error {
	if peer.Name == d.n.cfg.Name {
		return nil
	}
	if _, err := decodeMeta(peer.Meta, d.n.self.Schema); err != nil {
		d.n.refuse(peer, err)
		return err
	}
	return nil
}

// NotifyMerge implements memberlist.MergeDelegate: a join that would bring a peer of
// another schema version is refused whole.
func (d *membership) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.NotifyAlive(p); err != nil {
			return err
		}
	}
	return nil
}

// NotifyJoin implements memberlist.EventDelegate.
func (d *membership) NotifyJoin(peer *memberlist.Node) { d.n.joined(peer) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *membership) NotifyUpdate(peer *memberlist.Node) { d.n.joined(peer) }

// NotifyLeave implements memberlist.EventDelegate: the peer left or was declared dead.
func (d *membership) NotifyLeave(peer *memberlist.Node) { d.n.left(peer) }

// joined records a live peer's metadata (a join or an update).
func (n *Node) joined(m *memberlist.Node) {
	if m.Name == n.cfg.Name {
		return
	}
	md, err := decodeMeta(m.Meta, n.self.Schema)
	if err != nil {
		return // refused in NotifyAlive
	}
	n.mu.Lock()
	p, known := n.peers[m.Name]
	if known && md.Boot != "" && p.meta.Boot != "" && md.Boot != p.meta.Boot {
		// Started again on the same name (and address): what was placed on the last start
		// is gone with it, and its load is the new start's.
		n.mu.Unlock()
		n.log.Info("member restarted", "member", m.Name, "remote", md.Remote)
		n.left(m)
		n.joined(m)
		return
	}
	if !known {
		p = &peer{name: m.Name}
		n.peers[m.Name] = p
	}
	if md.Load.Seq > p.meta.Load.Seq || md.Remote != p.meta.Remote {
		p.suspect = time.Time{} // it published since: alive
	}
	if md.Load.Seq < p.meta.Load.Seq && p.meta.Remote == md.Remote {
		md.Load = p.meta.Load // an agent's answer told us a newer figure already
	}
	p.meta, p.heard = md, time.Now()
	n.mu.Unlock()
	if !known {
		n.log.Info("member joined", "member", m.Name, "remote", md.Remote)
		n.announce(&MemberJoined{Agent: n.agent, Node: m.Name, Remote: md.Remote})
	}
}

// left removes a peer that left or was declared dead: the proxies placed there hear of
// it, and the agent fences the workers it holds for it.
func (n *Node) left(m *memberlist.Node) {
	n.mu.Lock()
	p := n.peers[m.Name]
	if p == nil || m.Name == n.cfg.Name {
		n.mu.Unlock()
		return
	}
	delete(n.peers, m.Name)
	if m.State != memberlist.StateLeft { // not a member that left on purpose: it may come back
		if n.lost == nil {
			n.lost = map[string]lostMember{}
		}
		n.lost[m.Name] = lostMember{addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), at: time.Now()}
	}
	var proxies []string
	w := n.watchers[m.Name]
	delete(n.watchers, m.Name)
	n.mu.Unlock()
	for id := range w {
		proxies = append(proxies, id)
	}
	n.log.Warn("member lost", "member", m.Name, "remote", p.meta.Remote, "proxies", len(w))
	n.announce(&MemberLost{Agent: n.agent, Node: m.Name, Remote: p.meta.Remote})
	for _, pid := range w {
		n.system.Root.Send(pid, &nodeLost{node: m.Name, how: "membership declared it dead"})
	}
	n.system.Root.Send(n.agent, &ownerLost{owner: p.meta.Remote, node: m.Name})
}

// refuse logs and publishes a refused peer, once per name and reason.
func (n *Node) refuse(m *memberlist.Node, err error) {
	key := m.Name + "\x00" + err.Error()
	if _, seen := n.refused.LoadOrStore(key, true); seen {
		return
	}
	n.log.Warn("member refused", "member", m.Name, "addr", m.Address(), "err", err)
	n.announce(&MemberRefused{Agent: n.agent, Node: m.Name, Addr: m.Address(), Err: err})
}

// announce publishes a membership event through the agent: memberlist calls the node
// with its locks held, and an EventStream handler that called memberlist (MemberAddr)
// would deadlock if it ran here.
func (n *Node) announce(ev any) {
	n.system.Root.Send(n.agent, &announcement{ev: ev})
}
