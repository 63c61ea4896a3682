//go:build linux

package childproc

import (
	"context"
	"errors"
	"sync"

	"github.com/procsup/procsup/messages/wire"
)

// Peer is the child's view of its parent: send it messages, ask it things, log to it.
// Its methods are safe for concurrent use.
type Peer struct {
	w    *wire.Writer
	logs *logSink
	init *wire.InitializeRequest

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *wire.Reply
	closed  bool
}

// ReplyError is a request's failure as the other side reported it.
type ReplyError struct{ Message string }

// Error implements error.
func (e *ReplyError) Error() string { return e.Message }

// Log queues rec for the parent and returns at once: it never blocks. The runtime numbers
// it (Seq) and applies [MaxLogAttrs] and [MaxLogGroupDepth] to its attributes; a record
// over the buffer ([DefaultLogBuffer]), or logged after the runtime stopped taking
// records, is dropped and counted (the parent hears how many). Level uses slog's
// numbering. Log takes rec: do not change it afterwards.
//
// Package childproc/childlog is the slog logger on top of it; Log is there for any other
// way of logging.
func (p *Peer) Log(rec *wire.LogRecord) { p.logs.queue(rec) }

// InitRequest returns the parent's InitializeRequest.
func (p *Peer) InitRequest() *wire.InitializeRequest { return p.init }

// Send sends a one-way message to the parent.
func (p *Peer) Send(kind string, body []byte) error {
	return p.w.Write(&wire.Message{Kind: kind, Body: body})
}

// Request sends a request to the parent and waits for its reply or ctx. A reply with an
// error comes back as a [*ReplyError].
func (p *Peer) Request(ctx context.Context, kind string, body []byte) ([]byte, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrParentGone
	}
	p.nextID++
	id := p.nextID
	ch := make(chan *wire.Reply, 1)
	p.pending[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	if err := p.w.Write(&wire.Request{ID: id, Kind: kind, Body: body}); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrParentGone
		}
		if r.Error != "" {
			return nil, &ReplyError{Message: r.Error}
		}
		return r.Body, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Peer) deliver(r *wire.Reply) {
	p.mu.Lock()
	ch := p.pending[r.ID]
	p.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// closePending fails every outstanding request.
func (p *Peer) closePending() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for id, ch := range p.pending {
		close(ch)
		delete(p.pending, id)
	}
}

var errShutdown = errors.New("shutdown requested")
