package node

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/hashicorp/memberlist"
	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages/nodepb"
)

// Defaults of [Config].
const (
	DefaultHost          = "127.0.0.1"
	DefaultLeaseInterval = 500 * time.Millisecond
	DefaultLeaseTimeout  = 3 * time.Second
	// DefaultReconnectInterval and DefaultReconnectTimeout: how often a node tries to
	// join the members it lost again, and for how long after it lost each.
	DefaultReconnectInterval = 2 * time.Second
	DefaultReconnectTimeout  = 24 * time.Hour
	DefaultStartTimeout      = 10 * time.Second
)

// Config configures a [Node]. The zero value of every field but Specs is usable.
type Config struct {
	// Name names the node in membership; unique among the nodes. Zero: the host name and
	// the process id.
	Name string
	// Host is the address the node listens on, for remote and for membership. Zero:
	// 127.0.0.1 (this machine only). Listening elsewhere exposes the node to that network:
	// set MembershipKey and TLS (RemoteOptions) there.
	Host string
	// RemotePort and MemberPort are the ports of remote (gRPC) and of membership (TCP and
	// UDP). Zero picks free ports; Node.MemberAddr tells the one to join.
	RemotePort, MemberPort int
	// Join lists membership addresses ("host:port") of nodes to join. Empty starts a new
	// cluster of one. Start fails when none of them can be joined.
	Join []string
	// Specs are the workers this node runs, by name: a proxy names a spec, never a binary.
	// A node with no specs hosts nothing and only places (a client node).
	Specs map[string]actors.Config
	// MembershipKey, when set, encrypts and authenticates membership traffic (AES; 16, 24
	// or 32 bytes). Every node needs the same key.
	MembershipKey []byte
	// RemoteOptions are passed to protoactor's remote: TLS between nodes is
	// remote.WithServerOptions(grpc.Creds(serverCreds)) with
	// remote.WithDialOptions(grpc.WithTransportCredentials(clientCreds)).
	RemoteOptions []remote.ConfigOption
	// Membership, when set, adjusts memberlist's config after procsup's defaults
	// (memberlist.DefaultLocalConfig, about 4-5 s to declare a node dead). Detection
	// trades speed against false deaths: ProbeInterval, ProbeTimeout and SuspicionMult
	// lower find a dead node sooner and declare a slow one dead more often.
	Membership func(*memberlist.Config)
	// LeaseInterval is how often a node tells each other node it is alive (zero:
	// DefaultLeaseInterval). LeaseTimeout is how long a node keeps workers whose owner it
	// has not heard from (zero: DefaultLeaseTimeout); it must exceed LeaseInterval.
	LeaseInterval, LeaseTimeout time.Duration
	// ReconnectInterval is how often the node joins again, through memberlist's Join, the
	// members it lost (declared dead, or gone without a word), for ReconnectTimeout after
	// it lost each: when a partition ends, members that declared each other dead merge
	// again (memberlist alone stops talking to the dead once its gossip-to-the-dead time
	// has passed). Zero: DefaultReconnectInterval and DefaultReconnectTimeout; a negative
	// interval turns it off.
	ReconnectInterval, ReconnectTimeout time.Duration
	// Logger receives the node's logs, membership's included (at debug level). Zero:
	// slog.Default().
	Logger *slog.Logger
	// System is the actor system to run the node on; it must not have remote started. Zero:
	// a new one, with Logger as protoactor's logger.
	System *actor.ActorSystem

	schema int // the node protocol's version; tests set another
}

// withDefaults returns cfg with its zero fields set, or an error wrapping ErrBadConfig.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.Name == "" {
		h, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if cfg.LeaseInterval == 0 {
		cfg.LeaseInterval = DefaultLeaseInterval
	}
	if cfg.LeaseTimeout == 0 {
		cfg.LeaseTimeout = DefaultLeaseTimeout
	}
	if cfg.schema == 0 {
		cfg.schema = nodepb.SchemaVersion
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReconnectInterval == 0 {
		cfg.ReconnectInterval = DefaultReconnectInterval
	}
	if cfg.ReconnectTimeout == 0 {
		cfg.ReconnectTimeout = DefaultReconnectTimeout
	}
	switch {
	case cfg.RemotePort < 0 || cfg.RemotePort > 65535 || cfg.MemberPort < 0 || cfg.MemberPort > 65535:
		return cfg, fmt.Errorf("%w: ports must be 0 to 65535", ErrBadConfig)
	case cfg.LeaseInterval < 0 || cfg.LeaseTimeout <= cfg.LeaseInterval:
		return cfg, fmt.Errorf("%w: LeaseTimeout (%v) must exceed LeaseInterval (%v)", ErrBadConfig, cfg.LeaseTimeout, cfg.LeaseInterval)
	case len(cfg.MembershipKey) != 0 && len(cfg.MembershipKey) != 16 && len(cfg.MembershipKey) != 24 && len(cfg.MembershipKey) != 32:
		return cfg, fmt.Errorf("%w: MembershipKey must be 16, 24 or 32 bytes, not %d", ErrBadConfig, len(cfg.MembershipKey))
	}
	for name, spec := range cfg.Specs {
		if name == "" {
			return cfg, fmt.Errorf("%w: a spec with an empty name", ErrBadConfig)
		}
		if _, err := actors.NewProcess(spec); err != nil {
			return cfg, fmt.Errorf("%w: spec %q: %w", ErrBadConfig, name, err)
		}
	}
	return cfg, nil
}

// ProcessConfig configures a remote process ([Node.NewProcess]).
type ProcessConfig struct {
	// Spec names the worker spec, as registered on the nodes (Config.Specs). Required.
	Spec string
	// Node pins the worker to the node of that name. Zero: the least loaded live node
	// offering Spec (fewest workers, then fewest starting, then most free memory).
	Node string
	// Restart says which ends of the worker are failures handed to the proxy's parent's
	// strategy, as actors.Config.Restart does; a lost node is always one, except for
	// Temporary.
	Restart actors.RestartPolicy
	// StartTimeout bounds how long the proxy waits for the chosen node to take the worker
	// (not for the worker's initialization, which its spec bounds). Zero:
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxHeld bounds the messages held while the worker is being placed (zero: 1000);
	// more are refused with actors.ErrHeldFull.
	MaxHeld int
}
