package httpstatus

import (
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/procsup/procsup/messages"
)

//go:embed page.html process.html style.css
var files embed.FS

var funcs = template.FuncMap{
	"memory": func(v *messages.ProcessView) string {
		if v.MemoryBytes == 0 {
			return ""
		}
		return fmt.Sprintf("%.1f", float64(v.MemoryBytes)/(1<<20))
	},
	"cpu": func(p *proc) string {
		if p.CPU < 0 {
			return ""
		}
		return fmt.Sprintf("%.1f", p.CPU)
	},
	"ping": func(d time.Duration) string {
		if d <= 0 {
			return ""
		}
		return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
	},
	"seconds": func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) },
	"uptime": func(v *messages.ProcessView) string {
		if v.State == "dead" || v.Uptime <= 0 {
			return ""
		}
		return (time.Duration(v.Uptime * float64(time.Second))).Round(time.Second).String()
	},
	"pid": func(v *messages.ProcessView) string {
		if v.OSPid == 0 {
			return ""
		}
		return fmt.Sprint(v.OSPid)
	},
	"mib":     func(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) },
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"clock":   func(t time.Time) string { return t.Format(time.TimeOnly) },
	"ago": func(t time.Time) string {
		return time.Since(t).Round(time.Second).String() + " ago"
	},
}

var (
	pageTmpl    = template.Must(template.New("page.html").Funcs(funcs).ParseFS(files, "page.html", "style.css"))
	processTmpl = template.Must(template.New("process.html").Funcs(funcs).ParseFS(files, "process.html", "style.css"))
)

// proc is a process of the snapshot as the page lists it.
type proc struct {
	ID, Name string
	Depth    int
	V        *messages.ProcessView
	Recent   recent
	// Memory is its memory against its warning level (or its limit, without one): 1 is
	// at the level; 0 when either is unknown.
	Memory float64
	// CPU is its share of a core in percent: the monitor's, or between the history's
	// last two samples; negative when neither measured it.
	CPU float64
}

// Ping is its worst recent ping round trip, or its last one when that is worse.
func (p *proc) Ping() time.Duration {
	return max(p.Recent.WorstPing, time.Duration(p.V.PingRTT*float64(time.Second)))
}

// line is a row of the page's table: a process, a group heading its own, or a folded
// group.
type line struct {
	Proc   *proc
	Group  *group
	Folded bool
}

// group is a tree or a pool below the root, for the summary and the table.
type group struct {
	ID, Name, Kind string
	Depth          int
	Note           string
	Processes      int
	Running        int
	Restarts       int // of its processes, in the last ten minutes
	Failed         []string
	Stopped        []string
}

// Healthy reports whether every process of the group runs and none restarted lately.
func (g *group) Healthy() bool {
	return g.Processes == g.Running && g.Restarts == 0 && len(g.Failed) == 0
}

// attention lists, in each respect, the processes that stand out, the worst first.
type attention struct {
	Restarts []*proc
	Memory   []*proc
	CPU      []*proc
	Pings    []*proc
	Failures []failure
}

// failure is the newest failure of an actor, and how many of its failures the journal
// keeps.
type failure struct {
	Event
	Times int
}

func (a attention) Empty() bool {
	return len(a.Restarts)+len(a.Memory)+len(a.CPU)+len(a.Pings)+len(a.Failures) == 0
}

// How many processes each list of the attention section shows, and what puts one there.
const (
	attentionTop    = 5
	memoryAttention = 0.75 // of its warning level (or limit)
	cpuAttention    = 50.0 // percent of one core
	pingAttention   = 3    // times the median ping
	pingFloor       = 20 * time.Millisecond
	failuresShown   = 8   // actors
	failuresScanned = 500 // of the newest failures kept
)

// columns the table sorts by, each with its order (true: the highest first).
var columns = map[string]struct {
	desc bool
	less func(a, b *proc) int
}{
	"name":     {false, func(a, b *proc) int { return cmp.Compare(a.ID, b.ID) }},
	"state":    {false, func(a, b *proc) int { return cmp.Compare(a.V.State, b.V.State) }},
	"pid":      {false, func(a, b *proc) int { return cmp.Compare(a.V.OSPid, b.V.OSPid) }},
	"restarts": {true, func(a, b *proc) int { return cmp.Compare(a.V.Restarts, b.V.Restarts) }},
	"recent":   {true, func(a, b *proc) int { return cmp.Compare(a.Recent.Restarts, b.Recent.Restarts) }},
	"uptime":   {true, func(a, b *proc) int { return cmp.Compare(a.V.Uptime, b.V.Uptime) }},
	"memory":   {true, func(a, b *proc) int { return cmp.Compare(a.V.MemoryBytes, b.V.MemoryBytes) }},
	"cpu":      {true, func(a, b *proc) int { return cmp.Compare(a.CPU, b.CPU) }},
	"ping":     {true, func(a, b *proc) int { return cmp.Compare(a.Ping(), b.Ping()) }},
	"node":     {false, func(a, b *proc) int { return cmp.Compare(a.V.Node, b.V.Node) }},
}

// view is what the page is made of.
type view struct {
	Title    string
	Refresh  int
	At       string
	Counts   []count
	Groups   []*group
	Nodes    []count
	Members  []Member
	Problems []string
	Attn     attention
	Lines    []line
	Shown    int // processes in the table
	Total    int // processes below the root
	Query    query
	Flat     bool // the table lists processes only, sorted or filtered
	Sorts    []string
	States   []string
	Control  bool
}

type count struct {
	Name string
	N    int
}

// query is the table's sorting and filters, from the URL.
type query struct {
	Sort, State, Node, Q, Group string
}

func (q query) flat() bool { return q.Sort != "" || q.State != "" || q.Node != "" || q.Q != "" }

// With returns the URL query of q with key set to value.
func (q query) With(key, value string) template.URL {
	v := url.Values{}
	for k, s := range map[string]string{"sort": q.Sort, "state": q.State, "node": q.Node, "q": q.Q, "group": q.Group} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if value == "" {
		v.Del(key)
	} else {
		v.Set(key, value)
	}
	if len(v) == 0 {
		return "./"
	}
	return template.URL("?" + v.Encode())
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	snap := s.snapshot(r)
	q := query{Sort: r.FormValue("sort"), State: r.FormValue("state"), Node: r.FormValue("node"), Q: r.FormValue("q"), Group: r.FormValue("group")}
	if _, ok := columns[q.Sort]; !ok {
		q.Sort = ""
	}
	v := s.view(snap, q)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	pageTmpl.Execute(w, v)
}

// view makes the page of a snapshot.
func (s *Server) view(snap *messages.Snapshot, q query) *view {
	now := time.Now()
	var recents map[string]recent
	if s.history != nil {
		recents = s.history.recentOf(now)
	}
	v := &view{Title: s.o.Title, Refresh: int(s.o.Refresh.Seconds() + 0.5), At: now.Format(time.TimeOnly),
		Problems: snap.Problems(), Query: q, Control: s.o.ControlToken != ""}
	for name := range columns {
		v.Sorts = append(v.Sorts, name)
	}
	sort.Strings(v.Sorts)
	for state, n := range snap.Counts {
		v.Counts = append(v.Counts, count{state, n})
		v.States = append(v.States, state)
	}
	slices.SortFunc(v.Counts, func(a, b count) int { return cmp.Compare(a.Name, b.Name) })
	sort.Strings(v.States)
	if s.o.Members != nil {
		v.Members = s.o.Members()
	}

	// Every process and group, in the tree's order.
	var procs []*proc
	var tree []line
	var gather func(n *messages.Snapshot, depth int, owners []*group)
	gather = func(n *messages.Snapshot, depth int, owners []*group) {
		switch {
		case n.Process != nil:
			p := &proc{ID: n.ID, Name: n.Name, Depth: depth, V: n.Process, CPU: -1}
			if r, ok := recents[n.ID]; ok {
				p.Recent, p.CPU = r, r.CPU
			}
			if n.Process.CPUSampled {
				p.CPU = n.Process.CPUPercent
			}
			if level := cmp.Or(n.Process.MemoryWarn, n.Process.MemoryLimit); level > 0 && n.Process.MemoryBytes > 0 {
				p.Memory = float64(n.Process.MemoryBytes) / float64(level)
			}
			procs = append(procs, p)
			tree = append(tree, line{Proc: p})
			for _, g := range owners {
				g.Processes++
				g.Restarts += p.Recent.Restarts
				if p.V.State == "running" {
					g.Running++
				}
			}
		default:
			g := &group{ID: n.ID, Name: n.Name, Kind: n.Kind, Depth: depth, Note: n.Error, Failed: n.Failed, Stopped: n.Stopped}
			if n.Pool != nil {
				g.Note = fmt.Sprintf("idle %d, busy %d, starting %d, waiting %d", n.Pool.Idle, n.Pool.Busy, n.Pool.Starting, n.Pool.Waiting)
			}
			v.Groups = append(v.Groups, g)
			tree = append(tree, line{Group: g})
			owners = append(owners, g)
		}
		for _, c := range n.Children {
			gather(c, depth+1, owners)
		}
	}
	gather(snap, 0, nil)
	v.Total = len(procs)
	v.Attn = s.attention(procs)

	nodes := map[string]int{}
	for _, p := range procs {
		nodes[p.V.Node]++
	}
	if len(nodes) > 1 || len(v.Members) > 0 {
		for n, c := range nodes {
			v.Nodes = append(v.Nodes, count{cmp.Or(n, "this node"), c})
		}
		slices.SortFunc(v.Nodes, func(a, b count) int { return cmp.Compare(a.Name, b.Name) })
	}

	// The table: sorted and filtered flat, or the tree with its healthy large groups
	// folded.
	if q.flat() {
		v.Flat = true
		for _, p := range procs {
			if q.State != "" && p.V.State != q.State || q.Node != "" && cmp.Or(p.V.Node, "this node") != q.Node ||
				q.Q != "" && !strings.Contains(p.ID, q.Q) || q.Group != "" && !strings.HasPrefix(p.ID, q.Group+"/") {
				continue
			}
			v.Lines = append(v.Lines, line{Proc: p})
		}
		if c, ok := columns[q.Sort]; ok {
			slices.SortStableFunc(v.Lines, func(a, b line) int {
				if c.desc {
					return c.less(b.Proc, a.Proc)
				}
				return c.less(a.Proc, b.Proc)
			})
		}
		v.Shown = len(v.Lines)
		return v
	}
	skip := ""
	for _, l := range tree {
		id := ""
		if l.Proc != nil {
			id = l.Proc.ID
		} else {
			id = l.Group.ID
		}
		if skip != "" && strings.HasPrefix(id, skip+"/") {
			continue
		}
		skip = ""
		if q.Group != "" && id != q.Group && !strings.HasPrefix(id, q.Group+"/") {
			continue
		}
		if g := l.Group; g != nil && g.ID != q.Group && s.o.FoldAbove > 0 && g.Processes > s.o.FoldAbove && g.Healthy() {
			l.Folded, skip = true, g.ID
		}
		if l.Proc != nil {
			v.Shown++
		}
		v.Lines = append(v.Lines, l)
	}
	return v
}

// attention picks the processes that stand out.
func (s *Server) attention(procs []*proc) attention {
	var a attention
	top := func(keep func(*proc) bool, by func(a, b *proc) int) []*proc {
		var out []*proc
		for _, p := range procs {
			if keep(p) {
				out = append(out, p)
			}
		}
		slices.SortStableFunc(out, func(a, b *proc) int { return by(b, a) })
		return out[:min(len(out), attentionTop)]
	}
	a.Restarts = top(func(p *proc) bool { return p.Recent.Restarts > 0 }, columns["recent"].less)
	a.Memory = top(func(p *proc) bool { return p.Memory >= memoryAttention },
		func(a, b *proc) int { return cmp.Compare(a.Memory, b.Memory) })
	a.CPU = top(func(p *proc) bool { return p.CPU >= cpuAttention }, columns["cpu"].less)
	var pings []time.Duration
	for _, p := range procs {
		if d := p.Ping(); d > 0 {
			pings = append(pings, d)
		}
	}
	if len(pings) > 0 {
		slices.Sort(pings)
		slow := max(pingAttention*pings[len(pings)/2], pingFloor)
		a.Pings = top(func(p *proc) bool { return p.Ping() >= slow }, columns["ping"].less)
	}
	// The newest failure of each actor, with how many of its failures are kept.
	seen := map[string]int{}
	for _, e := range s.journal.last(failuresScanned, func(e *Event) bool { return e.Failure }) {
		if i, ok := seen[e.Actor]; ok {
			a.Failures[i].Times++
			continue
		}
		if len(a.Failures) < failuresShown {
			seen[e.Actor] = len(a.Failures)
			a.Failures = append(a.Failures, failure{Event: e, Times: 1})
		}
	}
	return a
}
