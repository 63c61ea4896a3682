package node_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// netlab is a small network of namespaces for the partition soak: one namespace holds a
// bridge; each node's namespace is joined to it by a veth pair, its end "eth0" with an
// address of labNet. Every address lives only inside these namespaces; deleting them
// (at the test's end, or at the next run's start when a run was killed) removes every
// link.
type netlab struct {
	t      *testing.T
	prefix string   // "pslab<pid>": the namespaces' names start with it
	bridge string   // the bridge's namespace
	ns     []string // each node's namespace
	addrs  []string // each node's address
}

// labNet is the soak's subnet, inside its namespaces only.
const labNet = "10.213.7."

func newNetlab(t *testing.T, n int) *netlab {
	t.Helper()
	sweepNetlabs(t)
	l := &netlab{t: t, prefix: "pslab" + strconv.Itoa(os.Getpid())}
	l.bridge = l.prefix + "-br"
	t.Cleanup(func() { l.close() })
	l.ip("netns", "add", l.bridge)
	l.ip("-n", l.bridge, "link", "set", "lo", "up")
	l.ip("-n", l.bridge, "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.bridge, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%s-n%d", l.prefix, i)
		addr := labNet + strconv.Itoa(10+i)
		l.ip("netns", "add", ns)
		l.ns, l.addrs = append(l.ns, ns), append(l.addrs, addr)
		l.ip("-n", ns, "link", "set", "lo", "up")
		l.ip("-n", l.bridge, "link", "add", l.port(i), "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.ip("-n", l.bridge, "link", "set", l.port(i), "master", "br0", "up")
		l.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
	}
	return l
}

// port is node i's veth end on the bridge.
func (l *netlab) port(i int) string { return "v" + strconv.Itoa(i) }

func (l *netlab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// linkDown cuts node i off completely: its port on the bridge goes down (packets are
// dropped silently, routes stay). linkUp heals it.
func (l *netlab) linkDown(i int) { l.ip("-n", l.bridge, "link", "set", l.port(i), "down") }
func (l *netlab) linkUp(i int)   { l.ip("-n", l.bridge, "link", "set", l.port(i), "up") }

// blackhole drops (on) or lets through again (off) what node i sends to the nodes to:
// one direction only.
func (l *netlab) blackhole(i int, to []int, on bool) {
	verb := "add"
	if !on {
		verb = "del"
	}
	for _, j := range to {
		l.ip("-n", l.ns[i], "route", verb, "blackhole", l.addrs[j]+"/32")
	}
}

// split cuts the nodes a from the nodes b both ways (on), or heals the cut.
func (l *netlab) split(a, b []int, on bool) {
	for _, i := range a {
		l.blackhole(i, b, on)
	}
	for _, i := range b {
		l.blackhole(i, a, on)
	}
}

// close deletes the namespaces, and with them every link, and returns how many of them
// are still there after.
func (l *netlab) close() int {
	for _, ns := range append(append([]string(nil), l.ns...), l.bridge) {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	left := 0
	for _, ns := range listNetns() {
		if strings.HasPrefix(ns, l.prefix+"-") {
			left++
		}
	}
	l.ns = nil
	return left
}

// sweepNetlabs deletes the namespaces of runs whose test process is gone (a run that was
// killed before its cleanup).
func sweepNetlabs(t *testing.T) {
	for _, ns := range listNetns() {
		rest, ok := strings.CutPrefix(ns, "pslab")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(rest[:strings.IndexByte(rest+"-", '-')])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its run goes on
		}
		t.Logf("removing namespace %s of a run that was killed", ns)
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

func listNetns() []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}
