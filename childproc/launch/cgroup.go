//go:build linux

package launch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A child started in a cgroup (see [InCgroup]) is contained by the kernel: it and every
// descendant, whatever process group or session they make, belong to the child's own
// cgroup v2 directory until they die, and [Process.KillGroupAndWait] kills that whole
// cgroup with cgroup.kill and waits until it is empty. The child enters its cgroup at
// clone (clone3 with CLONE_INTO_CGROUP), so not even its first fork can escape.
//
// The directories: the parent directory a [Cgroups] was opened with (a delegated
// subtree), one session directory per supervising program in it
// (procsup-<pid>-<start>), and one directory per child in the session, named for the
// child (the actor's name) and a sequence number. cgroup v2 cannot rename a cgroup and
// the child's pid is known only after it was cloned into it, so the pid is not in the
// name: [Process.Cgroup] and the actor's log records give the path next to the pid.
//
// When the supervising program dies, a guardian kills its session: a small process (this
// program run again, caught by this package's init before main) that holds a pipe from
// the supervisor and, at its end, writes the session's cgroup.kill and removes its
// directories. See [Cgroups].

// cgroup2Magic is CGROUP2_SUPER_MAGIC, the f_type of a cgroup v2 file system.
const cgroup2Magic = 0x63677270

// ErrBadCgroup is matched by every error of [OpenCgroups]: a directory that is not cgroup
// v2, is not writable, or breaks cgroup v2's rule that a cgroup whose controllers are
// handed to its children holds no process itself.
var ErrBadCgroup = errors.New("procsup/launch: bad cgroup directory")

// CgroupLimits are the kernel's limits on one child and all its descendants. A zero
// field sets no limit. Each needs its controller (memory, pids, cpu) delegated to the
// parent directory; without it the limit is left out, and said so once in the log.
type CgroupLimits struct {
	// MemoryMax is memory.max in bytes: above it the kernel reclaims, then OOM-kills
	// inside the cgroup.
	MemoryMax int64
	// MemoryHigh is memory.high in bytes: above it the cgroup is throttled and reclaimed
	// hard, not killed.
	MemoryHigh int64
	// PidsMax is pids.max: forks beyond it fail (a fork bomb stays bounded).
	PidsMax int64
	// CPUMax is cpu.max in cores (1.5 is one and a half cores' time per period).
	CPUMax float64
}

func (l CgroupLimits) validate() error {
	if l.MemoryMax < 0 || l.MemoryHigh < 0 || l.PidsMax < 0 || l.CPUMax < 0 {
		return fmt.Errorf("%w: a negative limit (%+v)", ErrBadCgroup, l)
	}
	return nil
}

// controllers returns the controllers l needs.
func (l CgroupLimits) controllers() []string {
	var c []string
	if l.MemoryMax > 0 || l.MemoryHigh > 0 {
		c = append(c, "memory")
	}
	if l.PidsMax > 0 {
		c = append(c, "pids")
	}
	if l.CPUMax > 0 {
		c = append(c, "cpu")
	}
	return c
}

// Cgroups is a delegated cgroup v2 directory in which procsup creates one cgroup per
// child. Open it with [OpenCgroups]; start children in it with [InCgroup]; [Cgroups.Close]
// it when this program supervises no more children there. It is safe for concurrent use,
// and one value serves any number of children.
type Cgroups struct {
	dir string
	log *slog.Logger

	mu       sync.Mutex
	session  string // created with the first child
	guard    *os.File
	n        uint64
	closed   bool
	enabled  map[string]bool // controllers handed down to the children
	warnedOf map[string]bool
}

// sessions numbers the sessions of this program.
var sessions struct {
	mu sync.Mutex
	n  int
}

// OpenCgroups checks that dir is a cgroup v2 directory this program may create cgroups
// in. It writes nothing yet: the session directory and its guardian are made when the
// first child starts. log (nil for slog.Default) hears, once each, of limits the kernel
// cannot apply. Errors match [ErrBadCgroup].
func OpenCgroups(dir string, log *slog.Logger) (*Cgroups, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no directory", ErrBadCgroup)
	}
	dir = filepath.Clean(dir)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCgroup, dir, err)
	}
	if st.Type != cgroup2Magic {
		return nil, fmt.Errorf("%w: %s is not on a cgroup v2 file system (mount one, or see CgroupMount)", ErrBadCgroup, dir)
	}
	for _, f := range []string{dir, filepath.Join(dir, "cgroup.procs"), filepath.Join(dir, "cgroup.subtree_control")} {
		if err := syscall.Access(f, 2 /* W_OK */); err != nil {
			return nil, fmt.Errorf("%w: %s is not writable (a delegated subtree is: systemd's Delegate=yes, a container's own cgroup): %v", ErrBadCgroup, f, err)
		}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Cgroups{dir: dir, log: log, enabled: map[string]bool{}, warnedOf: map[string]bool{}}, nil
}

// Check reports whether children with limits can start in c: an error matching
// [ErrBadCgroup] when a limit is negative, or when limits need controllers and c is this
// program's own cgroup (cgroup v2 hands controllers down only from a cgroup that holds no
// process, the root excepted).
func (c *Cgroups) Check(limits CgroupLimits) error {
	if err := limits.validate(); err != nil {
		return err
	}
	if len(limits.controllers()) == 0 {
		return nil
	}
	if self, err := ownCgroup(); err == nil && self == c.dir && !isRootCgroup(c.dir) {
		return fmt.Errorf("%w: %s is this program's own cgroup: limits need its controllers handed to its children, and cgroup v2 allows that only in a cgroup that holds no process (move this program to a sibling, e.g. %s)",
			ErrBadCgroup, c.dir, filepath.Join(filepath.Dir(c.dir), "supervisor"))
	}
	return nil
}

// ErrCgroupsClosed is the start error of a child in a closed [Cgroups].
var ErrCgroupsClosed = errors.New("procsup/launch: cgroups closed")

// Close kills every child still in c's session, removes the session and stops its
// guardian. Children started in c afterwards fail with [ErrCgroupsClosed].
func (c *Cgroups) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.session == "" {
		return nil
	}
	removeSession(c.session)
	var err error
	if _, serr := os.Stat(c.session); serr == nil {
		err = fmt.Errorf("procsup/launch: the session cgroup %s could not be removed", c.session)
	}
	dropGuardian(c.guard)
	return errors.Join(err, c.guard.Close()) // the guardian sees the end and exits
}

// Dir is the parent directory.
func (c *Cgroups) Dir() string { return c.dir }

// Session is this program's session directory, made with the first child ("" before).
func (c *Cgroups) Session() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// isRootCgroup reports whether dir is the root of a cgroup v2 mount, which may hold
// processes and hand its controllers down all the same.
func isRootCgroup(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cgroup.type"))
	return errors.Is(err, fs.ErrNotExist)
}

// ownCgroup returns the directory of this program's cgroup v2.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var rel string
	for _, line := range strings.Split(string(b), "\n") {
		if r, ok := strings.CutPrefix(line, "0::"); ok {
			rel = r
		}
	}
	if rel == "" {
		return "", errors.New("no cgroup v2 entry in /proc/self/cgroup")
	}
	mount, err := CgroupMount()
	if err != nil {
		return "", err
	}
	return filepath.Join(mount, rel), nil
}

// CgroupMount returns where the cgroup v2 file system is mounted (/sys/fs/cgroup on a
// unified host, /sys/fs/cgroup/unified on a hybrid one), from /proc/self/mountinfo.
func CgroupMount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// "36 25 0:31 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if f := strings.Fields(post); len(f) > 0 && f[0] == "cgroup2" {
			if g := strings.Fields(pre); len(g) >= 5 {
				return unescapeMount(g[4]), nil
			}
		}
	}
	return "", errors.New("procsup/launch: no cgroup v2 file system is mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// newChild makes the cgroup for one child, named for name, with limits, and returns it
// with its directory open for clone3.
func (c *Cgroups) newChild(name string, limits CgroupLimits) (*Cgroup, error) {
	if err := c.Check(limits); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrCgroupsClosed
	}
	if c.session == "" {
		if err := c.openSession(); err != nil {
			return nil, err
		}
	}
	c.n++
	dir := filepath.Join(c.session, fmt.Sprintf("%s.%d", cgroupName(name), c.n))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making the child's cgroup: %w", err)
	}
	g := &Cgroup{dir: dir}
	c.applyLimits(dir, limits)
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("opening the child's cgroup: %w", err)
	}
	g.fd = f
	return g, nil
}

// cgroupName keeps what a path and a person read easily of an actor's name.
func cgroupName(name string) string {
	if name == "" {
		return "child"
	}
	b := []byte(name)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			b[i] = '_'
		}
	}
	return strings.Trim(string(b[:min(len(b), 100)]), "_")
}

// openSession makes this program's session directory and starts its guardian. Under
// c.mu.
func (c *Cgroups) openSession() error {
	sweepSessions(c.dir)
	sessions.mu.Lock()
	sessions.n++
	n := sessions.n
	sessions.mu.Unlock()
	session := filepath.Join(c.dir, fmt.Sprintf("%s%d", sessionPrefix(os.Getpid()), n))
	if err := os.Mkdir(session, 0o755); err != nil {
		return fmt.Errorf("making the session cgroup: %w", err)
	}
	guard, err := startGuard(session)
	if err != nil {
		removeSession(session)
		return fmt.Errorf("starting the cgroup guardian: %w", err)
	}
	c.session, c.guard = session, guard
	return nil
}

// enable hands controller ctl down to the children, once: the parent to the session,
// the session to each child. Without it, it says so once. Under c.mu.
func (c *Cgroups) enable(ctl string) bool {
	if on, tried := c.enabled[ctl]; tried {
		return on
	}
	err := writeFile(filepath.Join(c.dir, "cgroup.subtree_control"), "+"+ctl)
	if err == nil {
		err = writeFile(filepath.Join(c.session, "cgroup.subtree_control"), "+"+ctl)
	}
	if err != nil {
		c.log.Warn("procsup: a cgroup controller is not available: its limits are left out", "controller", ctl, "cgroup", c.dir, "error", err)
	}
	c.enabled[ctl] = err == nil
	return err == nil
}

// applyLimits writes limits into a child's cgroup, each whose controller is on. Under
// c.mu.
func (c *Cgroups) applyLimits(dir string, l CgroupLimits) {
	set := func(ctl, file, value string) {
		if !c.enable(ctl) {
			return
		}
		if err := writeFile(filepath.Join(dir, file), value); err != nil && !c.warnedOf[file] {
			c.warnedOf[file] = true
			c.log.Warn("procsup: a cgroup limit could not be set", "file", file, "value", value, "error", err)
		}
	}
	if l.MemoryMax > 0 {
		set("memory", "memory.max", strconv.FormatInt(l.MemoryMax, 10))
	}
	if l.MemoryHigh > 0 {
		set("memory", "memory.high", strconv.FormatInt(l.MemoryHigh, 10))
	}
	if l.PidsMax > 0 {
		set("pids", "pids.max", strconv.FormatInt(l.PidsMax, 10))
	}
	if l.CPUMax > 0 {
		const period = 100000
		set("cpu", "cpu.max", fmt.Sprintf("%d %d", int64(l.CPUMax*period), period))
	}
}

// Available reports whether the kernel offers controller (memory, pids, cpu) in c's
// directory (its cgroup.controllers), so that limits of that kind can apply.
func (c *Cgroups) Available(controller string) bool {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.controllers"))
	return err == nil && slices.Contains(strings.Fields(string(b)), controller)
}

// Enabled reports whether the controller (memory, pids, cpu) is on for the children:
// their limits of that kind apply. Before a child asked for it, it reports false.
func (c *Cgroups) Enabled(controller string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enabled[controller]
}

// sessionPrefix begins the names of a supervising program's sessions: its pid and its
// start time (in clock ticks after boot), so that a later program with the same pid is
// not taken for it. A number follows.
func sessionPrefix(pid int) string {
	return fmt.Sprintf("procsup-%d-%s-", pid, startTicks(pid))
}

func startTicks(pid int) string {
	if f, ok := statFields(strconv.Itoa(pid)); ok && len(f) > 19 {
		return f[19]
	}
	return "0"
}

// sweepSessions kills and removes the sessions in dir whose program is gone (its
// guardian was killed too, say).
func sweepSessions(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, "procsup-")
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err == nil && !strings.HasPrefix(name, sessionPrefix(n)) {
			removeSession(filepath.Join(dir, name))
		}
	}
}

// removeSession kills everything in a session and removes its directories.
func removeSession(session string) {
	g := &Cgroup{dir: session}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.killAndWait(ctx)
	entries, _ := os.ReadDir(session)
	for _, e := range entries {
		if e.IsDir() {
			syscall.Rmdir(filepath.Join(session, e.Name()))
		}
	}
	syscall.Rmdir(session)
}

// Cgroup is one child's cgroup.
type Cgroup struct {
	dir string
	fd  *os.File // the directory, open for clone3 until the child started
}

// Dir is the cgroup's directory.
func (g *Cgroup) Dir() string { return g.dir }

// killAndWait kills every process in the cgroup and waits until it is empty.
func (g *Cgroup) killAndWait(ctx context.Context) error {
	if err := writeFile(filepath.Join(g.dir, "cgroup.kill"), "1"); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(g.dir); serr != nil {
				return nil // no cgroup, nothing in it
			}
		}
		if err := g.freezeAndKill(ctx); err != nil {
			return err
		}
	}
	return g.waitEmpty(ctx)
}

// freezeAndKill is cgroup.kill for kernels before 5.14: freeze the cgroup so that
// nothing in it forks, SIGKILL every process listed, thaw (a frozen task dies of SIGKILL).
func (g *Cgroup) freezeAndKill(ctx context.Context) error {
	if err := writeFile(filepath.Join(g.dir, "cgroup.freeze"), "1"); err != nil {
		return fmt.Errorf("procsup/launch: cgroup %s: neither cgroup.kill nor cgroup.freeze: %w", g.dir, err)
	}
	defer writeFile(filepath.Join(g.dir, "cgroup.freeze"), "0")
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		if v, _ := g.event("frozen"); v == 1 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("procsup/launch: cgroup %s did not freeze: %w", g.dir, ctx.Err())
		case <-time.After(delay):
		}
	}
	return g.signalProcs(syscall.SIGKILL)
}

// signalProcs sends sig to every process of the cgroup and its sub-cgroups.
func (g *Cgroup) signalProcs(sig syscall.Signal) error {
	return filepath.WalkDir(g.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, sig)
			}
		}
		return nil
	})
}

// waitEmpty waits until cgroup.events says no process is left in the cgroup.
func (g *Cgroup) waitEmpty(ctx context.Context) error {
	for delay := 50 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		populated, err := g.event("populated")
		if err != nil || populated == 0 {
			return nil // gone, or empty
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("procsup/launch: cgroup %s still has processes: %w", g.dir, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// event reads one key of cgroup.events.
func (g *Cgroup) event(key string) (int64, error) {
	return readKey(filepath.Join(g.dir, "cgroup.events"), key)
}

// Populated reports whether a process is left in the cgroup.
func (g *Cgroup) Populated() bool {
	v, err := g.event("populated")
	return err == nil && v != 0
}

// remove removes the cgroup's directory; the cgroup must be empty.
func (g *Cgroup) remove() error {
	err := syscall.Rmdir(g.dir)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("procsup/launch: removing cgroup %s: %w", g.dir, err)
	}
	return nil
}

// CgroupStats are the figures the kernel keeps for a cgroup: the child and all its
// descendants, the dead ones included. A figure whose file is missing (its controller is
// off) is zero, with its Has field false.
type CgroupStats struct {
	// CPU is the CPU time used, user and system (cpu.stat, present without controllers).
	CPU time.Duration
	// Memory is memory.current in bytes.
	Memory    uint64
	HasMemory bool
	// OOMKills counts processes the kernel's OOM killer killed in the cgroup
	// (memory.events).
	OOMKills uint64
	// CPUPressure and MemoryPressure are the share of the last 10 s in which some task
	// waited for CPU or memory (cpu.pressure, memory.pressure "some avg10", 0 to 100).
	CPUPressure, MemoryPressure float64
	HasPressure                 bool
}

// Stats reads the cgroup's figures.
func (g *Cgroup) Stats() (CgroupStats, error) {
	var s CgroupStats
	usec, err := readKey(filepath.Join(g.dir, "cpu.stat"), "usage_usec")
	if err != nil {
		return s, err
	}
	s.CPU = time.Duration(usec) * time.Microsecond
	if b, err := os.ReadFile(filepath.Join(g.dir, "memory.current")); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			s.Memory, s.HasMemory = v, true
		}
	}
	if v, err := readKey(filepath.Join(g.dir, "memory.events"), "oom_kill"); err == nil {
		s.OOMKills = uint64(v)
	}
	cpu, err1 := readPressure(filepath.Join(g.dir, "cpu.pressure"))
	mem, err2 := readPressure(filepath.Join(g.dir, "memory.pressure"))
	if err1 == nil || err2 == nil {
		s.CPUPressure, s.MemoryPressure, s.HasPressure = cpu, mem, true
	}
	return s, nil
}

// readKey reads the integer after key in a flat-keyed cgroup file ("key value" lines).
func readKey(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseKey(b, key)
}

func parseKey(b []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s", key)
}

// readPressure reads "some avg10" of a pressure file.
func readPressure(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parsePressure(b)
}

func parsePressure(b []byte) (float64, error) {
	// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0"
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "some ")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if v, ok := strings.CutPrefix(f, "avg10="); ok {
				return strconv.ParseFloat(v, 64)
			}
		}
	}
	return 0, errors.New("no some avg10")
}

func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
