//go:build linux

package launch

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// syncBuffer is a bytes.Buffer safe for the copying goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A worker started through a keeper outlives the connection that started it, is adopted
// by the next one with its pid and its output, and its exit reaches the adopter.
func TestKeeperHandsAWorkerOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "k")
	opts := KeeperOptions{Dir: dir, AdoptWithin: 20 * time.Second}
	k, err := OpenKeeper(ctx, "hand-over", opts)
	if err != nil {
		t.Fatal(err)
	}
	var out1 syncBuffer
	p, err := Start(ctx, &Command{Path: "sh", Args: []string{"-c", `echo one; read line; echo "got $line"; sleep 300`}, Stdout: &out1},
		WithoutProtocol(), Kept(k, "w1", []byte("note-1"), 0))
	if err != nil {
		t.Fatal(err)
	}
	pid, keeperPid := p.Pid(), k.Pid()
	if keeperPid == 0 || !Alive(keeperPid) {
		t.Fatalf("keeper pid %d not alive", keeperPid)
	}
	if ppid := parentOf(pid); ppid != keeperPid {
		t.Fatalf("the worker's parent is %d, want the keeper %d", ppid, keeperPid)
	}
	waitFor(t, func() bool { return strings.Contains(out1.String(), "one") })
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if !Alive(pid) {
		t.Fatal("the worker died with the connection")
	}

	k2, err := OpenKeeper(ctx, "hand-over", opts)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Pid() != keeperPid {
		t.Fatalf("a second keeper %d, want %d", k2.Pid(), keeperPid)
	}
	orphans := k2.Orphans()
	if len(orphans) != 1 || orphans[0].Name != "w1" || orphans[0].Pid != pid || string(orphans[0].Note) != "note-1" {
		t.Fatalf("orphans %+v", orphans)
	}
	if _, err := k2.Adopt("nobody", nil, nil); !errors.Is(err, ErrNoOrphan) {
		t.Fatalf("adopting nobody: %v", err)
	}
	var out2 syncBuffer
	q, err := k2.Adopt("w1", &out2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pid() != pid || !q.Adopted() || string(q.Note()) != "note-1" {
		t.Fatalf("adopted pid %d adopted %v note %q", q.Pid(), q.Adopted(), q.Note())
	}
	// A third program is refused while this one is connected.
	if _, err := OpenKeeper(ctx, "hand-over", opts); !errors.Is(err, ErrKeeperBusy) {
		t.Fatalf("a second connection: %v", err)
	}
	if err := q.Kill(); err != nil {
		t.Fatal(err)
	}
	st, err := q.Wait(ctx)
	if err != nil || st.Signal != syscall.SIGKILL {
		t.Fatalf("exit %v %v, want SIGKILL", st, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing left to keep: the keeper ends with the connection.
	k2.Close()
	waitFor(t, func() bool { return !Alive(keeperPid) })
}

// With nobody to adopt them within AdoptWithin, the keeper ends its workers and exits.
func TestKeeperEndsUnadoptedWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := OpenKeeper(ctx, "nobody-comes", KeeperOptions{Dir: filepath.Join(t.TempDir(), "k"), AdoptWithin: 300 * time.Millisecond, EndGrace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for range 3 {
		p, err := Start(ctx, &Command{Path: "sh", Args: []string{"-c", "trap '' TERM; sleep 300"}}, WithoutProtocol(), Kept(k, "w", nil, 0))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p.Pid())
	}
	keeperPid := k.Pid()
	k.Close()
	waitFor(t, func() bool { return !Alive(keeperPid) })
	for _, pid := range pids {
		if Alive(pid) {
			t.Errorf("worker %d outlived its keeper", pid)
		}
	}
}

// A keeper killed takes its workers with it, and the program learns of it.
func TestKeeperKilledEndsWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := OpenKeeper(ctx, "killed", KeeperOptions{Dir: filepath.Join(t.TempDir(), "k")})
	if err != nil {
		t.Fatal(err)
	}
	p := keptSleeper(t, ctx, k, "w")
	syscall.Kill(k.Pid(), syscall.SIGKILL)
	st, err := p.Wait(ctx)
	if err != nil || st.Signal != syscall.SIGKILL {
		t.Fatalf("exit %v %v", st, err)
	}
	<-k.Done()
	if !errors.Is(k.Err(), ErrKeeperGone) {
		t.Fatalf("Err %v", k.Err())
	}
	if Alive(p.Pid()) {
		t.Fatal("the worker outlived its keeper")
	}
	if _, err := Start(ctx, &Command{Path: "sleep", Args: []string{"300"}}, WithoutProtocol(), Kept(k, "w", nil, 0)); !errors.Is(err, ErrKeeperGone) {
		t.Fatalf("a start through a dead keeper: %v", err)
	}
	p.Close()
}

func TestKeeperRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "a/b", "..x/", strings.Repeat("x", 65)} {
		if _, err := OpenKeeper(context.Background(), name, KeeperOptions{Dir: filepath.Join(t.TempDir(), "k")}); !errors.Is(err, ErrBadKeeper) {
			t.Errorf("%q: %v", name, err)
		}
	}
	open := t.TempDir()
	os.Chmod(open, 0o755)
	if _, err := OpenKeeper(context.Background(), "x", KeeperOptions{Dir: open}); !errors.Is(err, ErrBadKeeper) {
		t.Errorf("a directory others can reach: %v", err)
	}
}

func parentOf(pid int) int {
	f, ok := statFields(strconv.Itoa(pid))
	if !ok || len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30 s")
		}
		time.Sleep(delay)
	}
}

// A program of another protocol version is refused, and says so; the keeper and its
// workers carry on for a program of its own version.
func TestKeeperRefusesAnotherVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "k")
	opts := KeeperOptions{Dir: dir}
	k, err := OpenKeeper(ctx, "versions", opts)
	if err != nil {
		t.Fatal(err)
	}
	p := keptSleeper(t, ctx, k, "w")
	k.Close()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: filepath.Join(dir, "versions.sock"), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello, _ := msgpack.Marshal(&kmsg{T: kmHello, Version: KeeperVersion + 1, Pid: os.Getpid()})
	if _, _, err := c.WriteMsgUnix(hello, nil, nil); err != nil {
		t.Fatal(err)
	}
	m, _, err := (&kconn{c: c}).recv()
	if err != nil || m.T != kmRefused || !strings.Contains(m.Err, ErrKeeperVersion.Error()) {
		t.Fatalf("answer %+v %v, want a refusal for the version", m, err)
	}
	k2, err := OpenKeeper(ctx, "versions", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	adoptAndKill(t, ctx, k2, "w", p)
}

// Workers nobody adopts within ClaimWithin are ended gracefully; the adopted one runs on.
func TestKeeperEndsUnclaimedWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "k")
	k, err := OpenKeeper(ctx, "claims", KeeperOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, name := range []string{"kept", "unclaimed"} {
		pids = append(pids, keptSleeper(t, ctx, k, name).Pid())
	}
	k.Close()
	k2, err := OpenKeeper(ctx, "claims", KeeperOptions{Dir: dir, ClaimWithin: 100 * time.Millisecond, EndGrace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	p, err := k2.Adopt("kept", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !Alive(pids[1]) }) // its SIGTERM ends sleep at once
	if !Alive(pids[0]) || len(k2.Orphans()) != 0 {
		t.Fatalf("the adopted worker alive %v, orphans %v", Alive(pids[0]), k2.Orphans())
	}
	p.Kill()
	p.Wait(ctx)
	p.Close()
}

// Garbage, a message over the bound and a peer that says nothing are refused, none
// holding up the next program; the keeper goes on serving.
func TestKeeperRefusesGarbage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "k")
	k, err := OpenKeeper(ctx, "garbage", KeeperOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p := keptSleeper(t, ctx, k, "w")
	k.Close()
	for _, msg := range [][]byte{{0xc1, 0xff, 0x00}, []byte("not msgpack at all"), make([]byte, keeperMaxMsg+100)} {
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: filepath.Join(dir, "garbage.sock"), Net: "unixpacket"})
		if err != nil {
			t.Fatal(err)
		}
		c.WriteMsgUnix(msg, nil, nil)
		if _, _, err := (&kconn{c: c}).recv(); err == nil {
			t.Errorf("a %d-byte garbage hello was answered", len(msg))
		}
		c.Close()
	}
	k2, err := OpenKeeper(ctx, "garbage", KeeperOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	adoptAndKill(t, ctx, k2, "w", p)
}

// keptSleeper starts a plain sleep through k, under name.
func keptSleeper(t *testing.T, ctx context.Context, k *Keeper, name string) *Process {
	t.Helper()
	p, err := Start(ctx, &Command{Path: "sleep", Args: []string{"300"}}, WithoutProtocol(), Kept(k, name, nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// adoptAndKill adopts the worker called name from k, fails unless it is p's process,
// and kills it; p's and the adopted Process's descriptors are closed.
func adoptAndKill(t *testing.T, ctx context.Context, k *Keeper, name string, p *Process) {
	t.Helper()
	q, err := k.Adopt(name, nil, nil)
	if err != nil || q.Pid() != p.Pid() {
		t.Fatalf("adopt %s: %v", name, err)
	}
	q.Kill()
	q.Wait(ctx)
	q.Close()
	p.Close()
}
