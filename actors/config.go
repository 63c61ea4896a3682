package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/monitor"
)

// Defaults, as LiveKit's job processes use them (see NewConfig).
const (
	DefaultInitializeTimeout    = 10 * time.Second
	DefaultCloseTimeout         = 10 * time.Second
	DefaultPingInterval         = 2500 * time.Millisecond
	DefaultPingTimeout          = 60 * time.Second
	DefaultHighPingThreshold    = 500 * time.Millisecond
	DefaultMemoryWarnMB         = 1000
	DefaultMemorySampleInterval = 5 * time.Second
	DefaultMemoryWarnCooldown   = monitor.DefaultWarnCooldown
	DefaultMemoryRepeatGrowthMB = monitor.DefaultRepeatGrowth >> 20
	DefaultWriteTimeout         = 5 * time.Second
	DefaultLogRate              = 1000
	DefaultMaxHeld              = 1024
)

// RestartPolicy says which ends of a process count as failures to hand to the parent's
// supervisor strategy, as in OTP. An end that is not a failure stops the actor.
type RestartPolicy int

const (
	// Permanent: every end that was not requested is a failure (a clean exit too).
	Permanent RestartPolicy = iota
	// Transient: only an abnormal end is a failure; a child that exits 0 by itself
	// stops the actor.
	Transient
	// Temporary: nothing is a failure; the actor stops when its process ends.
	Temporary
)

// String implements fmt.Stringer.
func (p RestartPolicy) String() string {
	switch p {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case Temporary:
		return "temporary"
	}
	return fmt.Sprintf("RestartPolicy(%d)", int(p))
}

// Config configures a process actor. Start from [NewConfig], which sets the defaults: in
// a Config literal every check is off, because 0 turns a check off.
type Config struct {
	// Launcher starts the process; usually a *launch.Command. Required.
	Launcher launch.Launcher
	// Payload is sent to the child in the InitializeRequest, for its own configuration.
	Payload []byte
	// Debug is passed to the child in the InitializeRequest.
	Debug bool

	// InitializeTimeout bounds the wait for the child's InitializeResponse; 0 waits
	// forever.
	InitializeTimeout time.Duration
	// CloseTimeout is how long a Close waits for the exit before killing; 0 kills at once.
	CloseTimeout time.Duration
	// PingInterval is the time between pings; 0 sends none (and so detects no hang).
	// The pings of all processes go out in batches on a shared grid, so each may come
	// up to a fifth of the interval (at most 1 s) late, and a millisecond later for
	// every eight other ticks (pings, memory samples) due at the same time (a burst of
	// more than 200 is spread over about 25 ms).
	PingInterval time.Duration
	// PingTimeout: no pong for this long and the process is killed as unresponsive; 0
	// turns the check off.
	PingTimeout time.Duration
	// HighPingThreshold: a round trip longer than this raises a HighPing event; 0 off.
	HighPingThreshold time.Duration

	// MemoryWarnMB raises MemoryWarning events above it; 0 off.
	MemoryWarnMB float64
	// MemoryLimitMB kills the process above it; 0 off.
	MemoryLimitMB float64
	// MemorySampleInterval is the time between memory samples, batched like the pings
	// (up to a fifth of the interval, at most 1 s, late).
	MemorySampleInterval time.Duration
	// MemoryWarnCooldown is the least time between two warnings, unless memory grew by
	// MemoryRepeatGrowthMB since the last one.
	MemoryWarnCooldown   time.Duration
	MemoryRepeatGrowthMB float64
	// MemoryTree sums memory over the process and all its descendants. With Cgroups,
	// the cgroup's memory.current is used where the kernel keeps it (the memory
	// controller is on), and covers the descendants anyway.
	MemoryTree bool

	// CPUWarnPercent raises CPUWarning events when the process uses more than this share
	// of one core (100 is a whole core, 250 two and a half) for CPUWarnPeriod; 0 off.
	// CPU is sampled with memory, every MemorySampleInterval: with Cgroups, the cgroup's
	// cpu.stat (the process and all its descendants); without, /proc (the process and the
	// children it has waited for).
	CPUWarnPercent float64
	// CPUWarnPeriod is how long the use must stay above CPUWarnPercent; 0 means one
	// sample interval.
	CPUWarnPeriod time.Duration
	// CPUWarnCooldown is the least time between two CPU warnings; 0 means
	// monitor.DefaultCPUWarnCooldown.
	CPUWarnCooldown time.Duration

	// Cgroups, when set, starts each process in a cgroup v2 of its own there (see
	// launch.Cgroups), entered at clone: every ending kills the whole cgroup and waits
	// until it is empty, so no descendant survives the process, whatever session or
	// process group it made; Status and Exited carry the cgroup's CPU time. Nil: the
	// process group is the unit, and a descendant that calls setsid escapes it.
	Cgroups *launch.Cgroups
	// CgroupLimits are the kernel's limits on each process and its descendants (memory,
	// pids, CPU); they need Cgroups. A limit whose controller the kernel does not hand
	// down is left out, and said so once in the log.
	CgroupLimits launch.CgroupLimits

	// Keeper, when set, starts the process through this keeper (see launch.Keeper),
	// which outlives this program: when the program dies or is replaced, the process goes
	// on running, and the first instance of an actor of the same name in the next program
	// to open the keeper adopts it (an Adopted event, Status.Adopted) instead of starting
	// one: running, with its pid, sockets, checks and logs, as if it had started it. A
	// kept process that had not initialized, was closing, or whose stream the program
	// before left in the middle of a frame is ended instead, and a new one started. The
	// Launcher must be a *launch.Command. Nil: the process dies with this program.
	Keeper *launch.Keeper

	// StackDumpGrace, when positive, makes every kill send SIGQUIT first (a Go child
	// prints its goroutines to stderr) and SIGKILL this long after.
	StackDumpGrace time.Duration

	// Restart is the restart policy.
	Restart RestartPolicy
	// Logger receives the actor's records and the child's own, with the child's pid and
	// the actor's id; nil means slog.Default().
	Logger *slog.Logger
	// MaxFrame caps a frame from the child; 0 means wire.DefaultMaxFrame. The child
	// learns it in the handshake and sends nothing larger; the child's own cap, which it
	// announces in turn, caps what the parent sends (an Ask over it fails at once).
	MaxFrame int
	// WriteTimeout bounds every write to the child's control socket: a child that stops
	// reading fills the socket, and the write then fails instead of blocking the actor;
	// the child is killed for it. 0 writes without a deadline.
	WriteTimeout time.Duration
	// InitLimiter caps concurrent starts and initializations; nil means DefaultLimiter,
	// min(NumCPU, 4) at once, shared by all such actors.
	InitLimiter *Limiter
	// LogRate caps the child's log records re-emitted per second (with a burst of as
	// many); records over it are dropped and counted in a warning. 0 is no cap.
	LogRate float64
	// StderrTail, when positive and the launcher is a *launch.Command whose Stderr is
	// nil, keeps the last StderrTail bytes the child writes to its stderr, for
	// Exited.Stderr: what a child said as it died (a Go runtime's fatal error, say) that
	// no log record carried. It costs a pipe and a goroutine per child; 0 keeps nothing
	// (stderr is discarded).
	StderrTail int
	// MaxHeld is how many Asks and Sends may wait for a process that is not running
	// yet (starting or initializing): they are sent, in order, when it runs, and failed
	// with ErrNotRunning (the reason wrapped) if it ends first. More are refused with
	// ErrHeldFull. 0 holds none: each is refused with ErrNotRunning at once.
	MaxHeld int
	// Name labels the process's metrics (see actors/metrics.go); "" means its actor's
	// name, and a pool's member's is its pool's.
	Name string
	// Plain, when set, supervises a program that does not speak procsup's protocol (see
	// PlainConfig). Nil: the child speaks it (childproc.Serve).
	Plain *PlainConfig
	// OnRequest answers requests the child sends to the parent. It runs on the actor's
	// goroutine, so it must be quick. Nil answers every request with an error.
	OnRequest func(kind string, body []byte) ([]byte, error)
}

// PlainConfig supervises a program that does not speak procsup's protocol: ffmpeg, a
// Python script, nginx. It gets no descriptors 3 and 4, no InitializeRequest and no
// pings; it is running once its readiness check passes; a Close sends it StopSignal,
// then kills it after CloseTimeout; its stdout and stderr lines become log records of the
// actor's Logger (with the pid and the actor, and "stream": "stdout" or "stderr", at
// most LogRate a second). Asks and Sends to it fail at once with ErrNoProtocol.
// Everything else (memory, CPU, cgroups, restarts, trees, pools, events) works as for a
// protocol child. The launcher must be a *launch.Command for its output to be logged.
type PlainConfig struct {
	// ReadyTCP, when set, is an address ("127.0.0.1:8080") the program is ready when it
	// accepts a connection on.
	ReadyTCP string
	// ReadyCommand, when set, is a command (program and arguments) the program is ready
	// when it exits 0: `pg_isready`, `curl -f http://...`.
	ReadyCommand []string
	// ReadyInterval is the time between two readiness checks; 0 means 50 ms. The
	// checks stop at InitializeTimeout (the program is then killed, ReasonInitTimeout).
	// With neither ReadyTCP nor ReadyCommand, the program is ready when it has started.
	ReadyInterval time.Duration
	// StopSignal starts a graceful stop (Close, or the actor stopping): sent to the
	// program's process group, and to every process of its cgroup; 0 means SIGTERM.
	StopSignal syscall.Signal
}

// DefaultReadyInterval is the time between two readiness checks of a plain program.
const DefaultReadyInterval = 50 * time.Millisecond

// NewConfig returns a Config for launcher with every default set.
func NewConfig(launcher launch.Launcher) Config {
	return Config{
		Launcher:             launcher,
		InitializeTimeout:    DefaultInitializeTimeout,
		CloseTimeout:         DefaultCloseTimeout,
		PingInterval:         DefaultPingInterval,
		PingTimeout:          DefaultPingTimeout,
		HighPingThreshold:    DefaultHighPingThreshold,
		MemoryWarnMB:         DefaultMemoryWarnMB,
		MemorySampleInterval: DefaultMemorySampleInterval,
		MemoryWarnCooldown:   DefaultMemoryWarnCooldown,
		MemoryRepeatGrowthMB: DefaultMemoryRepeatGrowthMB,
		WriteTimeout:         DefaultWriteTimeout,
		LogRate:              DefaultLogRate,
		MaxHeld:              DefaultMaxHeld,
	}
}

// ErrBadConfig is matched by every error of [Config.Validate].
var ErrBadConfig = errors.New("procsup/actors: bad config")

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if c.Launcher == nil {
		bad("no Launcher (a *launch.Command, say)")
	} else if cmd, ok := c.Launcher.(*launch.Command); ok && (cmd == nil || cmd.Path == "") {
		bad("the command has no Path")
	}
	for name, d := range map[string]time.Duration{
		"InitializeTimeout": c.InitializeTimeout, "CloseTimeout": c.CloseTimeout,
		"PingInterval": c.PingInterval, "PingTimeout": c.PingTimeout,
		"HighPingThreshold": c.HighPingThreshold, "MemorySampleInterval": c.MemorySampleInterval,
		"MemoryWarnCooldown": c.MemoryWarnCooldown, "StackDumpGrace": c.StackDumpGrace,
		"WriteTimeout": c.WriteTimeout, "CPUWarnPeriod": c.CPUWarnPeriod, "CPUWarnCooldown": c.CPUWarnCooldown,
	} {
		if d < 0 {
			bad("%s is negative (%v)", name, d)
		}
	}
	for name, v := range map[string]float64{"MemoryWarnMB": c.MemoryWarnMB, "MemoryLimitMB": c.MemoryLimitMB,
		"MemoryRepeatGrowthMB": c.MemoryRepeatGrowthMB, "LogRate": c.LogRate, "CPUWarnPercent": c.CPUWarnPercent} {
		if v < 0 {
			bad("%s is negative (%v)", name, v)
		}
	}
	if (c.MemoryWarnMB > 0 || c.MemoryLimitMB > 0 || c.CPUWarnPercent > 0) && c.MemorySampleInterval == 0 {
		bad("a memory or CPU check is on but MemorySampleInterval is 0")
	}
	if c.Keeper != nil {
		if _, ok := c.Launcher.(*launch.Command); !ok && c.Launcher != nil {
			bad("a Keeper starts only a *launch.Command, not a %T", c.Launcher)
		}
	}
	if c.Cgroups == nil && c.CgroupLimits != (launch.CgroupLimits{}) {
		bad("CgroupLimits are set but Cgroups is nil")
	}
	if c.Cgroups != nil {
		if err := c.Cgroups.Check(c.CgroupLimits); err != nil {
			bad("%w", err)
		}
	}
	if c.PingTimeout > 0 && c.PingInterval == 0 {
		bad("PingTimeout is set but PingInterval is 0: no ping would ever be answered")
	}
	if c.PingTimeout > 0 && c.PingTimeout < c.PingInterval {
		bad("PingTimeout (%v) is shorter than PingInterval (%v)", c.PingTimeout, c.PingInterval)
	}
	if c.Restart < Permanent || c.Restart > Temporary {
		bad("unknown restart policy %d", int(c.Restart))
	}
	if c.MaxFrame < 0 {
		bad("MaxFrame is negative")
	}
	if c.MaxHeld < 0 {
		bad("MaxHeld is negative")
	}
	if c.StderrTail < 0 {
		bad("StderrTail is negative")
	}
	if pc := c.Plain; pc != nil {
		if pc.ReadyTCP != "" && len(pc.ReadyCommand) > 0 {
			bad("Plain has both ReadyTCP and ReadyCommand: choose one")
		}
		if pc.ReadyCommand != nil && (len(pc.ReadyCommand) == 0 || pc.ReadyCommand[0] == "") {
			bad("Plain.ReadyCommand names no program")
		}
		if pc.ReadyTCP != "" {
			if _, _, err := net.SplitHostPort(pc.ReadyTCP); err != nil {
				bad("Plain.ReadyTCP: %v", err)
			}
		}
		if pc.ReadyInterval < 0 {
			bad("Plain.ReadyInterval is negative")
		}
		if pc.StopSignal < 0 || pc.StopSignal > 64 {
			bad("Plain.StopSignal %d is not a signal", int(pc.StopSignal))
		}
	}
	return errors.Join(errs...)
}
