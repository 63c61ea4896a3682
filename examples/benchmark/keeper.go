package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc/launch"
)

// envHelper runs this program as an earlier supervising program that leaves workers to
// be adopted: "dir name count child" starts count children (child: procsup's smallest)
// through the keeper called name in dir, named p1, p2..., says READY and waits to be
// killed.
const envHelper = "BENCHMARK_KEEPER_HELPER"

func keeperHelper(spec string) {
	f := strings.Fields(spec)
	count, _ := strconv.Atoi(f[2])
	quiet := slog.New(slog.DiscardHandler)
	k, err := launch.OpenKeeper(context.Background(), f[1], launch.KeeperOptions{Dir: f[0], Logger: quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark helper:", err)
		os.Exit(1)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	cfg := actors.NewConfig(&launch.Command{Path: f[3], Env: childEnv})
	cfg.Logger, cfg.Restart, cfg.Keeper = quiet, actors.Temporary, k
	props, err := actors.NewProcess(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark helper:", err)
		os.Exit(1)
	}
	side := newProcsupSide(system, props)
	side.prefix = "p"
	if _, err := startMany(side, count); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark helper:", err)
		os.Exit(1)
	}
	fmt.Println("READY")
	select {}
}

// leaveWorkers runs the helper: count children of the smallest kind under the keeper
// called name, left running when the helper is SIGKILLed.
func leaveWorkers(dir, name, minimal string, count int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %s", envHelper, dir, name, count, minimal))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	ready := sc.Scan() && sc.Text() == "READY"
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !ready {
		return fmt.Errorf("the helper leaving %d workers under keeper %s did not get them running", count, name)
	}
	return nil
}

// keeperRows measures procsup through a keeper against procsup started directly, side
// by side: spawn to ready, interleaved; the round trip to a worker adopted from an
// earlier program (the helper, SIGKILLed) against one started directly, interleaved;
// and the time a program takes from opening the keeper to 100 of 100 workers adopted
// and running, against starting 100 directly.
func keeperRows(system *actor.ActorSystem, quiet *slog.Logger, o options, minimal string, progress func(string)) ([]row, error) {
	base, err := os.MkdirTemp("", "procsup-benchmark-keepers")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	dir := filepath.Join(base, "keepers")
	ctx := context.Background()
	config := func(k *launch.Keeper) (*actor.Props, error) {
		cfg := actors.NewConfig(&launch.Command{Path: minimal, Env: childEnv})
		cfg.Logger, cfg.Restart, cfg.Keeper = quiet, actors.Temporary, k
		return actors.NewProcess(cfg)
	}
	directProps, err := config(nil)
	if err != nil {
		return nil, err
	}
	direct := newProcsupSide(system, directProps)
	direct.prefix = "direct"
	open := func(name string) (*launch.Keeper, *procsupSide, error) {
		k, err := launch.OpenKeeper(ctx, name, launch.KeeperOptions{Dir: dir, Logger: quiet})
		if err != nil {
			return nil, nil, err
		}
		props, err := config(k)
		if err != nil {
			return nil, nil, err
		}
		s := newProcsupSide(system, props)
		s.what, s.prefix = "procsup, through a keeper", name+"-"
		return k, s, nil
	}

	progress("through a keeper: starts")
	k, kept, err := open("spawn")
	if err != nil {
		return nil, err
	}
	defer k.Close()
	up, _, _, err := startKill([]side{direct, kept}, o.starts)
	if err != nil {
		return nil, err
	}

	progress("through a keeper: round trips to adopted workers")
	if err := leaveWorkers(dir, "adopt", minimal, roundTripPasses); err != nil {
		return nil, err
	}
	ka, adopted, err := open("adopt")
	if err != nil {
		return nil, err
	}
	defer ka.Close()
	adopted.what, adopted.prefix, adopted.adopted = "procsup, adopted", "p", true
	rt, err := roundTrips([]side{direct, adopted}, o.asks)
	if err != nil {
		return nil, err
	}

	const fleetN = 100
	progress(fmt.Sprintf("through a keeper: %d workers adopted", fleetN))
	began := time.Now()
	kids, err := startMany(direct, fleetN)
	if err != nil {
		return nil, err
	}
	fresh := time.Since(began)
	closeAll(kids)
	if err := leaveWorkers(dir, "fleet", minimal, fleetN); err != nil {
		return nil, err
	}
	began = time.Now()
	kf, fleet, err := open("fleet")
	if err != nil {
		return nil, err
	}
	defer kf.Close()
	fleet.prefix, fleet.adopted = "p", true
	kids, err = startMany(fleet, fleetN)
	if err != nil {
		return nil, err
	}
	adoptAll := time.Since(began)
	closeAll(kids)

	nan := math.NaN()
	return []row{
		{"through a keeper: spawn to ready (floor: procsup direct)", "time", append(medians(up), nan, nan)},
		{"adopted worker: request round trip (floor: procsup direct)", "time", append(medians(rt), nan, nan)},
		{fmt.Sprintf("%d of %d workers adopted, from opening the keeper (floor: %d started directly)", fleetN, fleetN, fleetN), "time", []float64{float64(fresh), float64(adoptAll), nan, nan}},
	}, nil
}
