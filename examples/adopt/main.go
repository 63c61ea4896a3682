// Command adopt shows a supervising program surviving its own crash: it runs a program
// that supervises six workers through a keeper and asks them all the time, SIGKILLs it,
// runs it again, and the new one adopts the six running workers (same pids, nothing
// restarted) and asks them on. It ends with one line:
//
//	RESULT workers=6 adopted=6 same_pids=6 restarted=0 asks_after=N failed_after=0 gap_ms=G
//
// gap_ms is the time from the kill to the first answer the new program got. With
// -abandon nothing comes back after the kill: the keeper ends the workers once
// AdoptWithin has passed, and the line is
//
//	RESULT workers=6 orphans=0 ended_ms=E
//
// ended_ms is the time from the kill to the last worker gone, and the keeper with them;
// orphans counts what is left running, the keeper included.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/childproc"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

const workers = 6

// The roles of this one binary, chosen by the environment: the example (none), the
// supervising program (envSupervisor) and the workers (childproc's entry).
const (
	envSupervisor = "ADOPT_SUPERVISOR" // the keeper's directory
	envWithin     = "ADOPT_WITHIN"
)

func main() {
	roles()
	abandon := flag.Bool("abandon", false, "kill the supervising program and start none: the keeper ends the workers after -within")
	within := flag.Duration("within", 3*time.Second, "the keeper's AdoptWithin")
	flag.Parse()
	if err := run(*abandon, *within, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "adopt:", err)
		os.Exit(1)
	}
}

// roles runs this binary as a worker or as the supervising program when the
// environment says so (and then does not return).
func roles() {
	childproc.Register("echo", childproc.HandlerFuncs{
		RequestFunc: func(ctx context.Context, p *childproc.Peer, r *wire.Request) ([]byte, error) {
			return r.Body, nil
		},
	})
	childproc.RunEntry() // a worker runs "echo" and exits here
	if dir := os.Getenv(envSupervisor); dir != "" {
		within, _ := time.ParseDuration(os.Getenv(envWithin))
		os.Exit(supervise(dir, within))
	}
}

// supervise is the supervising program: six workers in a tree, through the keeper in
// dir, each asked in a loop. It says on stdout "WORKER name pid adopted" for each
// running worker, "FIRST_OK unix-ns" at its first answer, and at its end (stdin closed)
// "ASKS ok failed".
func supervise(dir string, within time.Duration) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	k, err := launch.OpenKeeper(ctx, "adopt-example", launch.KeeperOptions{Dir: dir, AdoptWithin: within, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("KEEPER %d\n", k.Pid())
	cmd, err := launch.SelfCommand("echo")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := actors.NewConfig(cmd)
	cfg.Keeper, cfg.Logger = k, log
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	var mu sync.Mutex
	adopted := map[string]bool{}
	var running sync.WaitGroup // the Asks begin once all six run
	running.Add(workers)
	system.EventStream.Subscribe(func(ev any) {
		switch ev := ev.(type) {
		case *messages.Adopted:
			mu.Lock()
			adopted[ev.PID.Id] = ev.Refused == ""
			mu.Unlock()
		case *messages.StateChanged:
			if ev.To == messages.Running {
				mu.Lock()
				was := adopted[ev.PID.Id]
				mu.Unlock()
				say("WORKER %s %d %v", ev.PID.Id, ev.OSPid, was)
				if !was || ev.From != messages.Dead {
					running.Done()
				}
			}
		}
	})
	specs := make([]actors.Spec, workers)
	for i := range specs {
		props, err := actors.NewProcess(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		specs[i] = actors.Spec{Name: fmt.Sprint("w", i), Props: props}
	}
	tree, _ := system.Root.SpawnNamed(actors.NewTree(nil, specs...), "tree")

	running.Wait()
	stop := make(chan struct{})
	var ok, failed int64
	var first sync.Once
	var asking sync.WaitGroup
	for i := range workers {
		pid := actor.NewPID(system.Address(), fmt.Sprint("tree/w", i))
		asking.Go(func() {
			body := []byte("hello")
			for {
				select {
				case <-stop:
					return
				default:
				}
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				reply, err := actors.Ask(actx, system, pid, "echo", body)
				cancel()
				mu.Lock()
				if err == nil && string(reply) == "hello" {
					ok++
					first.Do(func() { say("FIRST_OK %d", time.Now().UnixNano()) })
				} else {
					failed++
					say("FAILED %s %v", pid.Id, err)
				}
				mu.Unlock()
			}
		})
	}
	io.Copy(io.Discard, os.Stdin) // until the example closes it
	close(stop)
	asking.Wait()
	system.Root.StopFuture(tree).Wait()
	k.Close()
	say("ASKS %d %d", ok, failed)
	return 0
}

// supervisor is a run of the supervising program.
type supervisor struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startSupervisor(dir string, within time.Duration) (*supervisor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envSupervisor+"="+dir, envWithin+"="+within.String())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &supervisor{cmd: cmd, lines: make(chan string, 100)}
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	return s, nil
}

// next returns the fields of the next line that begins with word.
func (s *supervisor) next(word string) ([]string, error) {
	timeout := time.After(time.Minute)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return nil, fmt.Errorf("the supervising program ended before %s", word)
			}
			if f := strings.Fields(line); len(f) > 0 && f[0] == word {
				return f, nil
			}
		case <-timeout:
			return nil, fmt.Errorf("no %s from the supervising program within a minute", word)
		}
	}
}

// workers reads the six WORKER lines: pids and whether each was adopted, by name.
func (s *supervisor) workers() (map[string]int, map[string]bool, error) {
	pids, adopted := map[string]int{}, map[string]bool{}
	for len(pids) < workers {
		f, err := s.next("WORKER")
		if err != nil {
			return nil, nil, err
		}
		pids[f[1]], _ = strconv.Atoi(f[2])
		adopted[f[1]] = f[3] == "true"
	}
	return pids, adopted, nil
}

func run(abandon bool, within time.Duration, out io.Writer) error {
	base, err := os.MkdirTemp("", "procsup-adopt-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	dir := filepath.Join(base, "keepers")
	first, err := startSupervisor(dir, within)
	if err != nil {
		return err
	}
	f, err := first.next("KEEPER")
	if err != nil {
		return err
	}
	keeper, _ := strconv.Atoi(f[1])
	pids, _, err := first.workers()
	if err != nil {
		return err
	}
	if _, err := first.next("FIRST_OK"); err != nil { // serving
		return err
	}
	first.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	first.cmd.Wait()

	if abandon {
		left := func() int { // the workers, and the keeper: gone too once it ended them
			n := alive(pids)
			if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", keeper)); strings.HasPrefix(string(cmdline), "procsup-keeper\x00") {
				n++
			}
			return n
		}
		for {
			if left() == 0 {
				break
			}
			if time.Since(killed) > within+time.Minute {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Fprintf(out, "RESULT workers=%d orphans=%d ended_ms=%d\n", len(pids), left(), time.Since(killed).Milliseconds())
		return nil
	}

	second, err := startSupervisor(dir, within)
	if err != nil {
		return err
	}
	again, adopted, err := second.workers()
	if err != nil {
		return err
	}
	f, err = second.next("FIRST_OK")
	if err != nil {
		return err
	}
	okAt, _ := strconv.ParseInt(f[1], 10, 64)
	gap := time.Unix(0, okAt).Sub(killed)
	nAdopted, same, restarted := 0, 0, 0
	for name, pid := range again {
		if adopted[name] {
			nAdopted++
		} else {
			restarted++
		}
		if pids[name] == pid {
			same++
		}
	}
	time.Sleep(time.Second) // a second of Asks to the adopted workers
	second.stdin.Close()
	f, err = second.next("ASKS")
	if err != nil {
		return err
	}
	second.cmd.Wait()
	fmt.Fprintf(out, "RESULT workers=%d adopted=%d same_pids=%d restarted=%d asks_after=%s failed_after=%s gap_ms=%d\n",
		len(again), nAdopted, same, restarted, f[1], f[2], gap.Milliseconds())
	if n := alive(again); n > 0 {
		return fmt.Errorf("%d workers left running", n)
	}
	return nil
}

// alive counts the pids that still run.
func alive(pids map[string]int) int {
	n := 0
	for _, pid := range pids {
		if launch.Alive(pid) {
			n++
		}
	}
	return n
}
