package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
)

type waiter struct {
	to     *actor.PID
	cancel func()
}

// failWaiters tells the waiting callers that starts fail, when nothing under way could
// serve them or as many starts in a row failed as may run at once (starts go on, backing
// off).
func (p *pool) failWaiters(ctx actor.Context) {
	if p.failures > 0 && len(p.idle) == 0 && (p.counts[memberStarting] == 0 || p.failures >= p.cfg.MaxStarting) {
		p.answerWaiters(ctx, fmt.Errorf("%w: %w", ErrStartsFailing, p.lastErr))
	}
}

// answerWaiters fails every waiting Acquire with err.
func (p *pool) answerWaiters(ctx actor.Context, err error) {
	for _, w := range p.waiters {
		w.cancel()
		ctx.Send(w.to, &messages.Acquired{Err: err})
	}
	p.waiters = nil
}

func (p *pool) acquire(ctx actor.Context, m *messages.Acquire) {
	if ctx.Sender() == nil {
		return
	}
	if mb := p.takeIdle(ctx); mb != nil {
		p.handOut(ctx, mb, ctx.Sender())
		return
	}
	w := &waiter{to: ctx.Sender(), cancel: func() {}}
	if !m.Deadline.IsZero() {
		wait := time.Until(m.Deadline)
		if wait <= 0 {
			ctx.Respond(&messages.Acquired{Err: ErrAcquireTimeout})
			return
		}
		w.cancel = sendAfter(p.system, wait, p.self, &poolWaiterOver{w: w})
	}
	p.waiters = append(p.waiters, w)
}

// takeIdle returns the oldest idle process whose OS process still lives. One that died
// (its Exited not yet here) is dropped, never handed out.
func (p *pool) takeIdle(ctx actor.Context) *member {
	for len(p.idle) > 0 {
		mb := p.idle[0]
		p.idle = p.idle[1:]
		switch {
		case mb.gen != p.gen && (p.rollout == nil || p.rollout.switched):
			p.retire(ctx, mb) // never handed out after the switch
		case p.worn(mb):
			p.closeMember(ctx, mb)
			p.event(ctx, messages.PoolRecycled, mb)
		case mb.ospid > 0 && launch.Alive(mb.ospid):
			return mb
		default:
			p.closeMember(ctx, mb)
		}
	}
	return nil
}

func (p *pool) handOut(ctx actor.Context, mb *member, to *actor.PID) {
	p.set(mb, memberBusy)
	mb.uses++
	ctx.Send(to, &messages.Acquired{PID: mb.pid})
	p.event(ctx, messages.PoolAcquired, mb)
}

func (p *pool) serveWaiters(ctx actor.Context) {
	for len(p.waiters) > 0 {
		mb := p.takeIdle(ctx)
		if mb == nil {
			return
		}
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.cancel()
		p.handOut(ctx, mb, w.to)
	}
}

func (p *pool) dropWaiter(w *waiter) bool {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// released returns the busy member pid names, with its release published, or nil.
func (p *pool) released(ctx actor.Context, pid *actor.PID) *member {
	mb := p.members[pid.GetId()]
	if mb == nil || mb.state != memberBusy {
		return nil
	}
	p.event(ctx, messages.PoolReleased, mb)
	return mb
}
