// Package workload is the example worker's behaviour, shared by examples/worker (a child
// program of its own) and examples/tree (which re-executes itself as the worker).
package workload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/childlog"
	"github.com/procsup/procsup/messages/wire"
)

// Modes the worker knows.
const (
	Healthy        = "healthy"         // answers requests, logs now and then
	Crash          = "crash"           // exits with -exit-code after -after
	Hang           = "hang"            // stops itself (SIGSTOP) after -after: no more pongs
	Leak           = "leak"            // allocates -leak-mb every 100 ms
	IgnoreShutdown = "ignore-shutdown" // never returns from Run
	SlowInit       = "slow-init"       // Init takes -after
	FailInit       = "fail-init"       // Init fails
	LogFlood       = "log-flood"       // logs as fast as it can for -after
)

// Options are the worker's flags.
type Options struct {
	Mode     string
	After    time.Duration
	ExitCode int
	LeakMB   int
}

// Flags parses args (without the program name) into Options.
func Flags(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&o.Mode, "mode", Healthy, "healthy, crash, hang, leak, ignore-shutdown, slow-init, fail-init or log-flood")
	fs.DurationVar(&o.After, "after", time.Second, "when the mode's behaviour starts (crash, hang, slow-init, log-flood)")
	fs.IntVar(&o.ExitCode, "exit-code", 3, "exit code of a crash")
	fs.IntVar(&o.LeakMB, "leak-mb", 5, "MB leaked every 100 ms")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch o.Mode {
	case Healthy, Crash, Hang, Leak, IgnoreShutdown, SlowInit, FailInit, LogFlood:
		return o, nil
	}
	return o, fmt.Errorf("unknown mode %q", o.Mode)
}

// Handler returns the child handler for o.
func Handler(o Options) childproc.Handler {
	var leaked [][]byte
	return childproc.HandlerFuncs{
		InitFunc: func(ctx context.Context, req *wire.InitializeRequest) error {
			switch o.Mode {
			case SlowInit:
				time.Sleep(o.After)
			case FailInit:
				return errors.New("cannot load model: weights.bin not found")
			}
			return nil
		},
		RunFunc: func(ctx context.Context, p *childproc.Peer) error {
			log := childlog.New(p)
			log.Info("worker ready", "mode", o.Mode)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			began := time.Now()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					if o.Mode == IgnoreShutdown {
						log.Warn("ignoring the shutdown request")
						select {}
					}
					log.Info("worker shutting down")
					return nil
				case <-tick.C:
				}
				due := time.Since(began) >= o.After
				switch {
				case o.Mode == Crash && due:
					log.Error("worker crashing", "exit_code", o.ExitCode)
					time.Sleep(50 * time.Millisecond) // let the record go out
					os.Exit(o.ExitCode)
				case o.Mode == Hang && due:
					log.Warn("worker hanging")
					time.Sleep(50 * time.Millisecond)
					syscall.Kill(os.Getpid(), syscall.SIGSTOP)
				case o.Mode == Leak:
					b := make([]byte, o.LeakMB<<20)
					for i := 0; i < len(b); i += 4096 {
						b[i] = 1
					}
					leaked = append(leaked, b)
				case o.Mode == LogFlood && !due:
					for i := range 1000 {
						log.Debug("flood", "i", i)
					}
				case o.Mode == Healthy && n%20 == 0:
					log.Info("worker heartbeat", "uptime", time.Since(began).Round(time.Second))
				}
			}
		},
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *wire.Request) ([]byte, error) {
			return r.Body, nil
		},
	}
}
