package httpstatus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

// A status server over a tree of one plain program: its events, as /events serves them.
func ExampleNew() {
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	defer system.Shutdown()

	// The server first, so that it keeps the tree's events from its start.
	status := httpstatus.New(system, actor.NewPID(system.Address(), "jobs"), httpstatus.Options{})
	defer status.Close()
	srv := httptest.NewServer(status) // or mux.Handle("/procsup/", http.StripPrefix("/procsup", status))
	defer srv.Close()

	cfg := actors.NewConfig(&launch.Command{Path: "sleep", Args: []string{"60"}})
	cfg.Plain, cfg.Logger = &actors.PlainConfig{}, quiet
	props, err := actors.NewProcess(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	running := make(chan struct{})
	system.EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(*messages.StateChanged); ok && e.To == messages.Running {
			close(running)
		}
	})
	tree, _ := system.Root.SpawnNamed(actors.NewTree(nil, actors.Spec{Name: "sleeper", Props: props}), "jobs")
	defer actors.StopAndWait(context.Background(), system, tree)
	<-running

	res, err := http.Get(srv.URL + "/events")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	var got httpstatus.Events
	json.NewDecoder(res.Body).Decode(&got)
	for _, e := range got.Events {
		fmt.Println(e.Seq, e.Type, e.Actor, e.To)
	}
	// Output:
	// 1 state_changed jobs/sleeper starting
	// 2 state_changed jobs/sleeper initializing
	// 3 state_changed jobs/sleeper running
}
