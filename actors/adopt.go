package actors

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/vmihailenco/msgpack/v5"
)

// A process actor with Config.Keeper starts its process through the keeper, which
// outlives this program, and notes with it what the next program needs to take the
// process over: the state it is in, what its handshake agreed, and its config's print.
// The first instance of an actor whose keeper holds a live process of the actor's name
// adopts it instead of starting one (adoptKept).

// The states a kept process is noted in.
const (
	keptStarting = "starting" // not initialized: the next program ends it
	keptRunning  = "running"
	keptClosing  = "closing" // asked to stop: the next program lets it end
)

// keptNote is what a process actor notes of its process with the keeper.
type keptNote struct {
	State     string `msgpack:"state"`
	MaxFrame  int    `msgpack:"max_frame,omitempty"` // the child's cap, from its handshake
	Fragments bool   `msgpack:"fragments,omitempty"` // the child reads fragments
	Plain     bool   `msgpack:"plain,omitempty"`
	Config    string `msgpack:"config,omitempty"` // configPrint of the config that started it
}

// note is the actor's note of its process in state, its handshake having agreed
// maxFrame and fragments.
func (p *process) note(state string, maxFrame int, fragments bool) []byte {
	b, _ := msgpack.Marshal(keptNote{State: state, MaxFrame: maxFrame, Fragments: fragments, Plain: p.cfg.Plain != nil, Config: p.print})
	return b // a struct of plain fields: Marshal cannot fail
}

// kept is the option that starts the process through the config's keeper.
func (p *process) kept() launch.Option {
	var stop syscall.Signal
	if p.cfg.Plain != nil {
		stop = p.cfg.Plain.StopSignal
	}
	return launch.Kept(p.cfg.Keeper, p.self.Id, p.note(keptStarting, 0, false), stop)
}

// noteKept notes the state of a kept process with its keeper (nothing for another).
func (p *process) noteKept(state string, maxFrame int, fragments bool) {
	if p.proc == nil || p.proc.Marks() == nil { // not kept
		return
	}
	p.proc.SetNote(p.note(state, maxFrame, fragments))
}

// adoptKept adopts the process the config's keeper holds under the actor's name, on
// the actor's first start: the process comes up running, as it was. A process that had
// not initialized, was closing, or whose streams were left mid-frame is ended instead
// (a closing one within CloseTimeout), and the actor starts a new one. It reports
// whether it adopted.
func (p *process) adoptKept(ctx actor.Context) bool {
	k := p.cfg.Keeper
	if k == nil || p.restarts > 0 {
		return false
	}
	var launcher launch.Launcher
	var lines []*lineLog
	if p.cfg.Plain != nil {
		launcher, lines = p.plainOutput()
	} else {
		launcher = p.protocolOutput()
	}
	var stdout, stderr io.Writer
	if c, ok := launcher.(*launch.Command); ok {
		stdout, stderr = c.Stdout, c.Stderr
	}
	proc, err := k.Adopt(p.self.Id, stdout, stderr)
	if err != nil {
		if !errors.Is(err, launch.ErrNoOrphan) {
			p.log.Warn("could not adopt the kept process", "error", err)
		}
		p.stderr = nil
		return false
	}
	var note keptNote
	msgpack.Unmarshal(proc.Note(), &note) // a note that does not decode has no state: not adopted
	why := ""
	switch {
	case note.State == keptClosing:
		why = "it was closing"
	case note.State != keptRunning:
		why = "it had not initialized"
	case note.Plain != (p.cfg.Plain != nil):
		why = "the config does not say whether it speaks the protocol as it does"
	case proc.Marks() != nil && proc.Marks().Cut():
		why = "the program before left one of its streams in the middle of a frame (" + cutStreams(proc.Marks()) + ")"
	}
	if why != "" {
		log := p.log.With("pid", proc.Pid())
		for _, l := range lines {
			l.begin(log, newLogStats(nil)) // its last lines
		}
		log.Warn("not adopting the kept process: ending it, and starting a new one", "why", why)
		p.publish(&messages.Adopted{PID: p.self, OSPid: proc.Pid(), StartedAt: proc.StartTime(), Refused: why})
		grace := time.Duration(0)
		if note.State == keptClosing {
			grace = p.cfg.CloseTimeout
		}
		go endProcess(proc, grace)
		p.stderr = nil
		return false
	}
	p.took(proc)
	p.adopted, p.ran = true, true
	p.beginOutput(lines)
	if p.cfg.Plain != nil {
		p.attachPlain(ctx)
	} else {
		p.attach(ctx, note.MaxFrame, note.Fragments)
	}
	p.startChecks(ctx)
	p.log.Info("adopted process", "started", proc.StartTime(), "outdated", note.Config != p.print)
	p.publish(&messages.Adopted{PID: p.self, OSPid: proc.Pid(), StartedAt: proc.StartTime(), Outdated: note.Config != p.print})
	p.become(messages.Starting, messages.Running, p.running)
	if p.cfg.Plain == nil {
		p.publishHandle()
	}
	return true
}

// cutStreams names the streams whose marks are set.
func cutStreams(m *launch.Marks) string {
	var cut []string
	for _, s := range []struct {
		name string
		mark *atomic.Uint32
	}{{"reading control", m.ControlRead()}, {"writing control", m.ControlWrite()},
		{"writing a fragmented frame", m.ControlBulk()}, {"reading logs", m.LogsRead()}} {
		if s.mark.Load() != 0 {
			cut = append(cut, s.name)
		}
	}
	return strings.Join(cut, ", ")
}

// endProcess ends a process no actor took: it may exit within grace (it was asked to),
// then it is killed; its sockets are closed.
func endProcess(proc *launch.Process, grace time.Duration) {
	if grace > 0 {
		select {
		case <-proc.Done():
		case <-time.After(grace):
		}
	}
	proc.Kill()
	<-proc.Done()
	proc.Close()
}

// configPrint is a short print of what a config starts: the program (its path, size and
// modification time, so that a new build at the same path differs), its arguments,
// environment, directory and payload. Two configs with one print start the same
// process; a pool retires adopted processes of another print (see adoptMembers). A
// config without a Keeper has none: nothing is compared with it.
func configPrint(cfg Config) string {
	if cfg.Keeper == nil {
		return ""
	}
	h := sha256.New()
	write := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	if c, ok := cfg.Launcher.(*launch.Command); ok && c != nil {
		path := c.Path
		if !strings.Contains(path, "/") {
			if lp, err := exec.LookPath(path); err == nil {
				path = lp
			}
		}
		write(path)
		if st, err := os.Stat(path); err == nil {
			write(st.ModTime().UTC().String())
			write(strconv.FormatInt(st.Size(), 10))
		}
		for _, a := range c.Args {
			write(a)
		}
		write("env")
		for _, e := range c.Env {
			write(e)
		}
		write(c.Dir)
	}
	h.Write(cfg.Payload)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
