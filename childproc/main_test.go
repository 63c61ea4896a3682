package childproc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childlog"
	"github.com/procsup/procsup/childproc/childproctest"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages/wire"
)

// The test binary doubles as every child program the tests start.
func TestMain(m *testing.M) {
	childproc.Register("echo", echoChild())
	childproc.Register("quick", orderChild(true))
	childproc.Register("concurrent", orderChild(false))
	childproc.Register("flood", floodChild())
	childproc.Register("grandparent", grandparentChild())
	childproc.Register("cgroupsupervisor", cgroupSupervisor())
	childproc.Register("owncgroup", ownCgroupChild())
	childproctest.Main(m)
}

// orderChild answers "slow" after 100 ms, "fail" with an error, "panic" with a panic and
// anything else at once with its body, on the read loop when quick.
func orderChild(quick bool) childproc.Handler {
	return childproc.HandlerFuncs{
		QuickRequests: quick,
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *wire.Request) ([]byte, error) {
			switch r.Kind {
			case "slow":
				time.Sleep(100 * time.Millisecond)
			case "fail":
				return []byte("ignored"), errors.New("request refused")
			case "panic":
				panic("handler bug")
			}
			return r.Body, nil
		},
	}
}

// echoChild fails Init when the payload says "fail" and takes as long as a payload that
// is a duration says, echoes requests (refusing "fail"), and answers the one-way
// messages "log" (logs a record with attributes and groups), "rawlog" (logs a record
// through Peer.Log) and "ask" (asks the parent a question and sends back the answer).
func echoChild() childproc.Handler {
	return childproc.HandlerFuncs{
		InitFunc: func(ctx context.Context, req *wire.InitializeRequest) error {
			if string(req.Payload) == "fail" {
				return errors.New("model file missing")
			}
			if d, err := time.ParseDuration(string(req.Payload)); err == nil {
				select { // a slow Init
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *wire.Request) ([]byte, error) {
			if r.Kind == "fail" {
				return nil, errors.New("request refused")
			}
			return r.Body, nil
		},
		MessageFunc: func(ctx context.Context, p *childproc.Peer, m *wire.Message) {
			switch m.Kind {
			case "log":
				childlog.New(p).With("worker", 7).WithGroup("job").Warn("disk slow", "ms", 250, slog.Group("dev", "name", "sda"))
			case "rawlog": // a record built by hand, over the attribute limit
				rec := &wire.LogRecord{Time: time.Now().UnixNano(), Message: "raw"}
				for i := range childproc.MaxLogAttrs + 44 {
					rec.Attrs = append(rec.Attrs, wire.Attr{Key: "k" + strconv.Itoa(i), Kind: "int", Value: int64(i)})
				}
				p.Log(rec)
			case "ask":
				answer, err := p.Request(ctx, "question", m.Body)
				if err != nil {
					answer = []byte("error: " + err.Error())
				}
				p.Send("answer", answer)
			case "exit":
				code, _ := strconv.Atoi(string(m.Body))
				os.Exit(code)
			}
		},
	}
}

// floodChild logs N records as fast as it can, then reports how many it dropped.
func floodChild() childproc.Handler {
	return childproc.HandlerFuncs{
		RunFunc: func(ctx context.Context, p *childproc.Peer) error {
			n, _ := strconv.Atoi(os.Getenv("FLOOD_N"))
			for i := range n {
				childlog.New(p).Info("flood", "i", i)
			}
			p.Send("done", nil)
			<-ctx.Done()
			return nil
		},
	}
}

// grandparentChild starts an echo child of its own, prints that child's pid on stdout,
// and then waits forever.
func grandparentChild() childproc.Handler {
	return childproc.HandlerFuncs{
		RunFunc: func(ctx context.Context, p *childproc.Peer) error {
			cmd, err := launch.SelfCommand("echo")
			if err != nil {
				return err
			}
			child, err := launch.Start(ctx, cmd)
			if err != nil {
				return err
			}
			fmt.Println(child.Pid())
			<-ctx.Done()
			return nil
		},
	}
}

// within waits until cond holds, polling, or fails the test after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
