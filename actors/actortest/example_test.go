package actortest_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors/actortest"
)

// exampleT stands in for the *testing.T a real test would pass.
type exampleT struct{}

func (exampleT) Helper()                      {}
func (exampleT) Errorf(f string, args ...any) { fmt.Printf("error: "+f+"\n", args...) }
func (exampleT) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (exampleT) Cleanup(func())               {}

// A probe is a sender whose replies a test can wait for.
func ExampleProbe() {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()
	greeter := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if name, ok := c.Message().(string); ok {
			c.Respond("hello, " + name)
		}
	}))

	probe := actortest.NewProbe(exampleT{}, system, nil) // in a test: NewProbe(t, system, nil)
	probe.Send(greeter, "probe")
	fmt.Println(actortest.ExpectType[string](probe, time.Second))
	probe.ExpectNoMessage(50*time.Millisecond, nil)
	// Output: hello, probe
}
