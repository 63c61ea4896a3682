package python_test

import (
	"context"
	"log"
	"time"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/python"
)

// A fork server that preloads a model's module, and a process actor whose worker is
// forked from it.
func ExampleStartForkserver() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs, err := python.StartForkserver(ctx, python.ForkserverOptions{
		Path:    []string{"/opt/app"}, // where procsup_child and the worker's modules are
		Preload: []string{"mymodel"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer fs.Close() // the workers it started go on

	cfg := actors.NewConfig(fs.Script("/opt/app/worker.py"))
	props, err := actors.NewProcess(cfg)
	if err != nil {
		log.Fatal(err)
	}
	_ = props // spawn it, or give it to a tree or a pool
}
