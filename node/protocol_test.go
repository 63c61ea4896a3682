package node_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/nodepb"
	"github.com/procsup/procsup/node"
	"github.com/procsup/procsup/node/nodetest"
)

// A node process of another schema version cannot join: membership refuses it before
// anything of the node protocol is sent, the node that refused it keeps working, and the
// refusal is an event.
func TestOtherSchemaRefused(t *testing.T) {
	o := owner(t)
	actortest.CheckLeaks(t)
	b := nodetest.StartProcess(t, "schema-b", o.MemberAddr())
	waitMembers(t, o, "owner", b.Name)
	probe := actortest.NewProbe(t, o.System(), restarting())
	refused := make(chan *node.MemberRefused, 8)
	sub := o.System().EventStream.Subscribe(func(ev any) {
		if r, ok := ev.(*node.MemberRefused); ok && r.Node == "schema-v2" {
			select {
			case refused <- r:
			default:
			}
		}
	})
	defer o.System().EventStream.Unsubscribe(sub)
	proxies, _ := spawnWorkers(t, o, probe, "sv", 1, "")

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), nodetest.EnvName+"=schema-v2", nodetest.EnvJoin+"="+o.MemberAddr(), envSchema+"=2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	line, _ := bufio.NewReader(bytes.NewReader(out)).ReadString('\n')
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.HasPrefix(line, "ERROR") || !strings.Contains(line, "schema version") {
		t.Fatalf("a node of schema 2 joining: %v, %q (stderr %s)", err, line, stderr.String())
	}
	select {
	case r := <-refused:
		if !errors.Is(r.Err, node.ErrSchemaMismatch) {
			t.Fatalf("MemberRefused.Err = %v", r.Err)
		}
	case <-time.After(wait):
		t.Fatal("no MemberRefused event")
	}
	waitMembers(t, o, "owner", b.Name)
	assertOnce(t, o, proxies)
}

// With a membership key, a node joins only a cluster with the same key.
func TestMembershipKey(t *testing.T) {
	actortest.CheckLeaks(t)
	const key = "0123456789abcdef"
	b := nodetest.StartProcess(t, "key-b", "", nodetest.EnvKey+"="+key)
	nodetest.StartProcess(t, "key-c", b.MemberAddr, nodetest.EnvKey+"="+key) // it fails the test if it cannot join
	for _, env := range []string{nodetest.EnvKey + "=", nodetest.EnvKey + "=fedcba9876543210"} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), nodetest.EnvName+"=key-d", nodetest.EnvJoin+"="+b.MemberAddr, env)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !bytes.HasPrefix(out, []byte("ERROR")) {
			t.Fatalf("a node with %s joining a keyed cluster: %v, %q", env, err, out)
		}
	}
}

// An agent refuses a spec it does not know, whoever asks: nothing from the network
// names a binary. A proxy for a spec no node offers ends with ErrNoNode.
func TestUnknownSpecRefused(t *testing.T) {
	o := owner(t)
	actortest.CheckLeaks(t)
	b := nodetest.StartProcess(t, "spec-b", o.MemberAddr())
	waitMembers(t, o, "owner", b.Name)

	probe := actortest.NewProbe(t, o.System(), nil)
	probe.Send(actor.NewPID(b.Remote, node.AgentName), &nodepb.StartWorker{Spec: "/bin/sh", Name: "intruder", Owner: probe.PID, Generation: 1})
	st := actortest.ExpectType[*nodepb.Started](probe, wait)
	if st.Host != nil || st.Error.GetKind() != nodepb.Error_UNKNOWN_SPEC {
		t.Fatalf("StartWorker for an unknown spec answered %v", st)
	}

	props, err := o.NewProcess(node.ProcessConfig{Spec: "nonesuch", Restart: actors.Temporary})
	if err != nil {
		t.Fatal(err)
	}
	pid := probe.Spawn(props, "nonesuch")
	ex := actortest.ExpectType(probe, wait, exitedOf(pid))
	if ex.Reason != messages.ReasonStartFailed || !errors.Is(ex.Err, node.ErrNoNode) {
		t.Fatalf("Exited = %v, want start failed with ErrNoNode", ex)
	}
	if _, err := o.NewProcess(node.ProcessConfig{}); !errors.Is(err, node.ErrBadConfig) {
		t.Fatalf("NewProcess without a spec: %v", err)
	}
	if _, err := node.Start(context.Background(), node.Config{MembershipKey: []byte("short")}); !errors.Is(err, node.ErrBadConfig) {
		t.Fatalf("Start with a 5-byte key: %v", err)
	}
	if _, err := node.Start(context.Background(), node.Config{System: o.System()}); !errors.Is(err, node.ErrBadConfig) {
		t.Fatalf("Start on a system that is a node already: %v", err)
	}
	if _, err := node.Start(context.Background(), node.Config{LeaseInterval: time.Second, LeaseTimeout: time.Second}); !errors.Is(err, node.ErrBadConfig) {
		t.Fatalf("Start with a lease timeout not above its interval: %v", err)
	}
}

// The committed generated code is what protoc makes of node.proto (Debian's
// protobuf-compiler; protoc-gen-go built from the module's own protobuf version).
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc is not installed (apt-get install protobuf-compiler); .ci/run installs it")
		}
		t.Skip("protoc is not installed (apt-get install protobuf-compiler)")
	}
	dir := t.TempDir()
	gen := filepath.Join(dir, "protoc-gen-go")
	if out, err := exec.Command("go", "build", "-o", gen, "google.golang.org/protobuf/cmd/protoc-gen-go").CombinedOutput(); err != nil {
		t.Fatalf("building protoc-gen-go: %v\n%s", err, out)
	}
	actorDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/asynkron/protoactor-go").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("protoc", "-I..", "-I"+filepath.Join(strings.TrimSpace(string(actorDir)), "actor"),
		"--plugin=protoc-gen-go="+gen, "--go_out="+dir, "--go_opt=paths=source_relative",
		"--go_opt=Mactor.proto=github.com/asynkron/protoactor-go/actor", "messages/nodepb/node.proto")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join(dir, "messages/nodepb/node.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../messages/nodepb/node.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(versionless(got), versionless(want)) {
		t.Fatal("messages/nodepb/node.pb.go is not what node.proto generates: go generate ./messages/nodepb")
	}
}

// versionless drops the generated header's tool versions (protoc's differs by machine).
func versionless(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("// \tprotoc")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
