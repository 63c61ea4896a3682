package node_test

import (
	"context"
	"fmt"
	"log"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/node"
)

// A node that runs workers of the spec "model", joined to a cluster, and a remote process
// placed from it on the least loaded node: Ask and Close go through the proxy as they
// would to a local process actor. (Not run: a test binary holds one node, the tests'.)
func ExampleNode_NewProcess() {
	ctx := context.Background()
	n, err := node.Start(ctx, node.Config{
		Name:  "node-a",
		Join:  []string{"127.0.0.1:7946"}, // another node's MemberAddr; none: a new cluster
		Specs: map[string]actors.Config{"model": actors.NewConfig(&launch.Command{Path: "/usr/local/bin/model-worker"})},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close(ctx)

	props, err := n.NewProcess(node.ProcessConfig{Spec: "model"})
	if err != nil {
		log.Fatal(err)
	}
	// In your tree: spawn it where you would spawn actors.NewProcess's props, under a
	// strategy (actors.NewTree, or a parent with actors.NewStrategy).
	tree := n.System().Root.Spawn(actors.NewTree(nil, actors.Spec{Name: "model", Props: props}))
	defer actors.StopAndWait(ctx, n.System(), tree)

	reply, err := actors.Ask(ctx, n.System(), actors.ChildPID(tree, "model"), "infer", []byte("hello"))
	fmt.Println(string(reply), err)
}
