// Command procsup shows and acts on a running supervision tree through its status
// handler (package actors/httpstatus), as pm2 and supervisorctl do for theirs:
//
//	go run ./cmd/procsup -addr http://127.0.0.1:8080 status        the processes, a table
//	go run ./cmd/procsup status -w                                  the same, refreshed in place
//	go run ./cmd/procsup events -f                                  the recent events, then each as it happens
//	go run ./cmd/procsup restart NAME                               close a process, start it again
//	go run ./cmd/procsup stop NAME                                  close a process, leave it stopped
//	go run ./cmd/procsup respawn TREE                               start a tree's stopped children
//
// The table's CPU column is the share of a core where the process's monitor samples CPU,
// else with -w the share since the table before, else the CPU time so far. -addr (or
// $PROCSUP_ADDR) is where the handler is mounted. The actions need the token
// the program gave the handler (httpstatus.Options.ControlToken), as -token or
// $PROCSUP_TOKEN. NAME is an actor's id or its last part. Exit status: 0 done, 1 the
// handler refused or failed, 2 a bad command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// errUsage is a bad command line: exit status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "procsup:", err)
		os.Exit(1)
	}
}

const usage = `usage: procsup [-addr URL] [-token TOKEN] COMMAND

commands:
  status [-w] [-every D] [-sort COLUMN]  the processes: name, state, pid, restarts,
                                         uptime, memory, CPU, last end (-w: refreshed)
  events [-f] [-since N]                 the recent events (-f: then each as it happens)
  restart NAME                           close a process gracefully and start it again
  stop NAME                              close a process and leave it stopped
  respawn TREE                           start the children a tree has not running
`

// run is the command with its arguments, writing to out and errOut.
func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("procsup", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { fmt.Fprint(errOut, usage); fs.PrintDefaults() }
	addr := fs.String("addr", envOr("PROCSUP_ADDR", "http://127.0.0.1:8080"), "where the status handler is mounted ($PROCSUP_ADDR)")
	token := fs.String("token", os.Getenv("PROCSUP_TOKEN"), "the control token, for restart, stop and respawn ($PROCSUP_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	c, err := newClient(*addr, *token)
	if err != nil {
		fmt.Fprintln(errOut, "procsup:", err)
		return errUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "status":
		return status(ctx, c, rest, out, errOut)
	case "events":
		return events(ctx, c, rest, out, errOut)
	case "restart", "stop", "respawn":
		if len(rest) != 1 {
			fmt.Fprintf(errOut, "procsup: %s takes one name\n", cmd)
			return errUsage
		}
		return act(ctx, c, cmd, rest[0], out)
	}
	fmt.Fprintf(errOut, "procsup: no command %q\n", cmd)
	fs.Usage()
	return errUsage
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
