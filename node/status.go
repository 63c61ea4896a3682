package node

import "github.com/procsup/procsup/actors/httpstatus"

// StatusMembers lists the live members as the status page shows them: pass it as
// httpstatus.Options.Members.
func (n *Node) StatusMembers() []httpstatus.Member {
	ms := n.Members()
	out := make([]httpstatus.Member, len(ms))
	for i, m := range ms {
		out[i] = httpstatus.Member{Name: m.Name, Address: m.Remote, Schema: m.Schema, Workers: m.Load.Workers,
			Starting: m.Load.Starting, FreeMB: m.Load.FreeMB, Heard: m.Heard}
	}
	return out
}
