package node_test

import (
	"log/slog"
	"os"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages/nodepb"
	"github.com/procsup/procsup/node"
)

// envSchema makes a node process speak another schema version (a test of refusal).
const envSchema = "PROCSUP_TEST_SCHEMA"

// configureNode is the config of the tests' node processes (nodetest.RunIfNode): they
// offer "echo", and run the benchmarks' floor, an actor named "bench-echo" that answers
// what it gets (protoactor remote's own request and response).
func configureNode(cfg *node.Config) {
	cfg.Logger = quiet()
	cfg.Specs = map[string]actors.Config{"echo": workerSpec(nil)}
	if v, _ := strconv.Atoi(os.Getenv(envSchema)); v != 0 {
		*cfg = node.WithSchema(*cfg, v)
	}
	cfg.System = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return cfg.Logger }))
	cfg.System.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*nodepb.Reply); ok {
			c.Respond(m)
		}
	}), "bench-echo")
}
