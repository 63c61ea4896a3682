package actors

import (
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
)

// rolloutRun is a rolling replacement under way.
type rolloutRun struct {
	oldGen   int
	oldProps *actor.Props
	oldPrint string
	switched bool // a new process is ready: no old one is handed out any more
	failures int  // new processes that failed: to start, or by ending unasked after ready
}

// Rollout starts a rolling replacement of pool's processes with cfg (a new binary, say):
// the pool starts replacements (PoolConfig.MaxSurge at a time beyond its target), and as
// each is ready retires an old idle process; busy ones are retired when released. From
// the first new process ready on, Acquire hands out no old process. When
// RolloutFailures new processes fail (to start, or by ending unasked after they were
// ready and before they were stable: PoolConfig.StableAfter), the pool aborts, closes the
// new ones and keeps the old config; its status (and so its health) says so until a later
// rollout is done. The rollout is done when no old process is left and every new one is
// stable. Progress comes as messages.Rollout events. A bad cfg is
// an error matching ErrBadConfig, and nothing changes.
func Rollout(system *actor.ActorSystem, pool *actor.PID, cfg Config) error {
	cfg.Restart = Temporary
	props, err := NewProcess(cfg)
	if err != nil {
		return err
	}
	system.Root.Send(pool, &rolloutStart{props: props, print: configPrint(cfg)})
	return nil
}

func (p *pool) startRollout(ctx actor.Context, props *actor.Props, print string) {
	if p.rollout != nil { // a new config during a rollout: the older new ones go too
		p.rollout.switched = false
	} else {
		p.rollout = &rolloutRun{oldGen: p.gen, oldProps: p.props, oldPrint: p.print}
	}
	p.gen++
	p.props, p.print = props, print
	p.rolloutEvent(ctx, messages.RolloutStarted, nil)
}

// surge is how many replacements may start beyond the target: MaxSurge while old
// processes are left to replace.
func (p *pool) surge() int {
	if p.rollout == nil {
		return 0
	}
	return min(p.cfg.MaxSurge, p.old())
}

// old counts the members of an older config still in the pool (closing ones excepted).
func (p *pool) old() int {
	n := 0
	for _, mb := range p.members {
		if mb.gen != p.gen && mb.state != memberClosing {
			n++
		}
	}
	return n
}

// retireOldIdle retires one idle process of an older config, if there is one.
func (p *pool) retireOldIdle(ctx actor.Context) bool {
	for i, mb := range p.idle {
		if mb.gen != p.gen {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.retire(ctx, mb)
			return true
		}
	}
	return false
}

// retire closes a member of an older config.
func (p *pool) retire(ctx actor.Context, mb *member) {
	p.closeMember(ctx, mb)
	p.event(ctx, messages.PoolRetired, mb)
	if p.rollout != nil {
		p.rolloutEvent(ctx, messages.RolloutProgress, nil)
	}
}

// rolloutFailure counts a new process that failed: to start, or by ending unasked after
// it was ready and before it was stable. At RolloutFailures the rollout is aborted: the
// new ones go, the old config is back.
func (p *pool) rolloutFailure(ctx actor.Context, m *messages.Exited) {
	mb := p.members[m.PID.Id]
	if p.rollout == nil || mb == nil || mb.gen != p.gen || !(mb.state == memberStarting || p.failedAfterReady(mb, m)) {
		return
	}
	p.rollout.failures++
	if p.rollout.failures < p.cfg.RolloutFailures {
		return
	}
	r := p.rollout
	p.rollout = nil
	p.gen, p.props, p.print = r.oldGen, r.oldProps, r.oldPrint
	p.failures, p.backoffUntil = 0, time.Time{} // the old config starts
	for _, x := range p.members {
		if x.gen != p.gen && x != mb && (x.state == memberIdle || x.state == memberStarting) {
			p.closeMember(ctx, x)
		}
	}
	p.idle = slices.DeleteFunc(p.idle, func(x *member) bool { return x.gen != p.gen })
	err := fmt.Errorf("%d new processes failed: %w", r.failures, failureOf(m))
	p.rolloutAborted = err.Error()
	p.rolloutEvent(ctx, messages.RolloutAborted, err)
}

// rolloutDone ends the rollout once no old process is left and new ones, every one
// stable, are back at the target.
func (p *pool) rolloutDone(ctx actor.Context) {
	if p.rollout != nil && p.old() == 0 && p.counts[memberStarting] == 0 && p.allStable() &&
		len(p.members)-p.counts[memberClosing] >= p.target() {
		p.rolloutEvent(ctx, messages.RolloutDone, nil)
		p.rollout, p.rolloutAborted = nil, ""
	}
}

// allStable reports whether every member not closing is stable.
func (p *pool) allStable() bool {
	for _, mb := range p.members {
		if mb.state != memberClosing && !mb.stable {
			return false
		}
	}
	return true
}

func (p *pool) rolloutEvent(ctx actor.Context, kind messages.RolloutKind, err error) {
	ev := &messages.Rollout{Pool: p.self, Kind: kind, Old: p.old(), New: len(p.members) - p.old() - p.counts[memberClosing], Err: err}
	if ctx.Parent() != nil {
		ctx.Send(ctx.Parent(), ev)
	}
	p.system.EventStream.Publish(ev)
	p.metrics.rolloutStep(p.name, kind)
}
