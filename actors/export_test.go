package actors

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
)

// LauncherForTest is a valid launcher that is never started.
func LauncherForTest() launch.Launcher { return &launch.Command{Path: "/bin/true"} }

// QuietSystem is an actor system that logs nothing, shut down when the test or
// benchmark ends.
func QuietSystem(tb testing.TB) *actor.ActorSystem {
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	tb.Cleanup(system.Shutdown)
	return system
}
