package main

import (
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/childproc/python"
)

// pythonRows measures a Python worker on procsup's Python runtime (pyminimal.py: no
// init, answers echo) against the Python floor (pyrawecho.py: the smallest Python
// program that echoes its socket, started the same way): spawn to ready and the round
// trip, interleaved. Without a python3 with msgpack the rows say so (NaN) and the run
// goes on.
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
	sides := []side{floorSide{path: py, args: []string{filepath.Join(dir, "pyrawecho.py")}, what: "Python floor"}, pyside}
	progress("Python: starts and round trips")
	up, _, _, err := startKill(sides, o.starts)
	if err != nil {
		return nil, err
	}
	rt, err := roundTrips(sides, o.asks)
	if err != nil {
		return nil, err
	}
	return []row{
		{"Python worker: spawn to ready (floor: the Python floor)", "time", append(medians(up), math.NaN(), math.NaN())},
		{"Python worker: request round trip (floor: the Python floor)", "time", append(medians(rt), math.NaN(), math.NaN())},
	}, nil
}
