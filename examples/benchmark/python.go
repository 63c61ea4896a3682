package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/childproc/python"
)

// pythonRows measures a Python worker on procsup's Python runtime (pyminimal.py: no
// init, answers echo) against the Python floor (pyrawecho.py: the smallest Python
// program that echoes its socket, started the same way, by os/exec), and the same worker
// forked by a fork server (python.Forkserver) against the Python fork floor
// (pyrawfork.py: the smallest Python fork server, whose child echoes its socket): spawn
// to ready and the round trip, interleaved. Without a python3 with msgpack the rows say
// so (NaN) and the run goes on.
func pythonRows(system *actor.ActorSystem, quiet *slog.Logger, o options, progress func(string)) ([]row, error) {
	nan := []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	py, err := python.Interpreter()
	if err != nil {
		progress(fmt.Sprintf("no Python rows: %v", err))
		return []row{{"Python worker: spawn to ready (no python3 with msgpack)", "time", nan}}, nil
	}
	_, here, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(here), "python")
	cfg := actors.NewConfig(&launch.Command{Path: py, Args: []string{filepath.Join(dir, "pyminimal.py")}, Env: childEnv})
	cfg.Logger, cfg.Restart = quiet, actors.Temporary
	props, err := actors.NewProcess(cfg)
	if err != nil {
		return nil, err
	}
	pyside := newProcsupSide(system, props)
	pyside.what = "procsup, Python"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs, err := python.StartForkserver(ctx, python.ForkserverOptions{Interpreter: py, Path: []string{filepath.Join(dir, "..", "..", "..", "childproc", "python")}, Env: childEnv})
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	fcfg := cfg
	fcfg.Launcher = fs.Script(filepath.Join(dir, "pyminimal.py"))
	fprops, err := actors.NewProcess(fcfg)
	if err != nil {
		return nil, err
	}
	forked := newProcsupSide(system, fprops)
	forked.what, forked.prefix = "procsup, Python, forked", "forked"
	forkFloor, err := newForkFloor(py, filepath.Join(dir, "pyrawfork.py"))
	if err != nil {
		return nil, err
	}
	defer forkFloor.stop()
	sides := []side{floorSide{path: py, args: []string{filepath.Join(dir, "pyrawecho.py")}, what: "Python floor"}, pyside, forkFloor, forked}
	progress("Python: starts and round trips")
	up, _, _, err := startKill(sides, o.starts)
	if err != nil {
		return nil, err
	}
	rt, err := roundTrips(sides, o.asks)
	if err != nil {
		return nil, err
	}
	ups, rts := medians(up), medians(rt)
	pair := func(floor, procsup float64) []float64 { return []float64{floor, procsup, math.NaN(), math.NaN()} }
	return []row{
		{"Python worker: spawn to ready (floor: the Python floor)", "time", pair(ups[0], ups[1])},
		{"Python worker: request round trip (floor: the Python floor)", "time", pair(rts[0], rts[1])},
		{"Python worker from a fork server: spawn to ready (floor: the Python fork floor)", "time", pair(ups[2], ups[3])},
		{"the same, against the Python floor", "time", pair(ups[0], ups[3])},
		{"Python worker from a fork server: request round trip (floor: the Python fork floor)", "time", pair(rts[2], rts[3])},
	}, nil
}
