// Package childproctest helps test programs that start children with childproc: a
// TestMain for a test binary that is also every child its tests start, and a raw echo
// child with no codec and no runtime, the floor a benchmark compares with.
package childproctest

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childproctest/rawecho"
	"github.com/procsup/procsup/childproc/launch"
)

// EnvRawEcho, set to any value in a child's environment, makes [Main] run [RawEcho].
const EnvRawEcho = "PROCSUP_RAW_ECHO"

// Main is a TestMain for a test binary that doubles as its children. Started as a child
// (by [launch.SelfCommand] for an entry given to [childproc.Register]) it runs that
// entry and exits; started with [EnvRawEcho] it runs [RawEcho]; otherwise it runs the
// tests and exits with their status. Children started by the tests exit at once even
// under the race detector (GORACE=atexit_sleep_ms=0 unless GORACE is set).
//
//	func TestMain(m *testing.M) {
//		childproc.Register("worker", worker())
//		childproctest.Main(m)
//	}
func Main(m *testing.M) {
	if os.Getenv(EnvRawEcho) != "" {
		RawEcho()
	}
	childproc.RunEntry()
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0") // a child built with -race sleeps 1 s at exit
	}
	os.Exit(m.Run())
}

// RawEcho copies descriptor 3 back to itself until it is closed, then exits 0: the
// floor child (package rawecho).
func RawEcho() { rawecho.Serve() }

// Build builds the main package pkg (an import path) into a temporary directory and
// returns the binary's path: a child program built separately, as users build theirs.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), path.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Minimal and RawMinimal are the import paths of the two smallest child programs, for
// [Build]: a procsup child that initializes, answers pings and echoes requests, and a Go
// child that echoes its raw socket, the floor it is measured against.
const (
	Minimal    = "github.com/procsup/procsup/childproc/childproctest/minimal"
	RawMinimal = "github.com/procsup/procsup/childproc/childproctest/rawminimal"
)

// ReadyRaw starts the raw echo program at path (RawMinimal, built), writes it one frame
// and reads the echo, and ends it; it returns the time from the start to the echo: the
// floor of a child's start to ready.
func ReadyRaw(tb testing.TB, path string) time.Duration {
	tb.Helper()
	frame := []byte{0, 0, 0, 4, 0x81, 0xa1, 'k', 0x01}
	began := time.Now()
	p, err := launch.Start(context.Background(), &launch.Command{Path: path})
	if err != nil {
		tb.Fatal(err)
	}
	defer p.Close()
	p.Control().Write(frame)
	if _, err := io.ReadFull(p.Control(), make([]byte, len(frame))); err != nil {
		tb.Fatal(err)
	}
	d := time.Since(began)
	p.Control().Close() // it exits at the end of its socket
	p.Wait(context.Background())
	return d
}

// StartRawEcho starts this program under childproc as a raw echo child: whatever is
// written to its Control socket comes back unchanged. The program's TestMain must be
// [Main] (or call RawEcho when [EnvRawEcho] is set).
func StartRawEcho(ctx context.Context) (*launch.Process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return launch.Start(ctx, &launch.Command{Path: exe, Env: append(os.Environ(), EnvRawEcho+"=1")})
}

// EchoFloor is a raw echo child held for a benchmark's floor: the bytes of one frame
// through a real socket pair and a real child, with no codec on either side.
type EchoFloor struct {
	tb    testing.TB
	p     *launch.Process
	frame []byte
	out   []byte
}

// NewEchoFloor starts the floor child ([RawMinimal], built separately: a raw echo with
// blocking reads) to echo frame, and ends it when tb's test or benchmark ends.
func NewEchoFloor(tb testing.TB, frame []byte) *EchoFloor {
	tb.Helper()
	p, err := launch.Start(context.Background(), &launch.Command{Path: Build(tb, RawMinimal)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Kill()
		p.Wait(context.Background())
		p.Close()
	})
	return &EchoFloor{tb: tb, p: p, frame: frame, out: make([]byte, len(frame))}
}

// RoundTrip sends the frame, reads it back and returns how long that took; it fails the
// test if the echo differs.
func (f *EchoFloor) RoundTrip() time.Duration {
	began := time.Now()
	if _, err := f.p.Control().Write(f.frame); err != nil {
		f.tb.Fatal(err)
	}
	if _, err := io.ReadFull(f.p.Control(), f.out); err != nil {
		f.tb.Fatal(err)
	}
	d := time.Since(began)
	if !bytes.Equal(f.out, f.frame) {
		f.tb.Fatalf("the raw echo sent back %q for %q", f.out, f.frame)
	}
	return d
}
