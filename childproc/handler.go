//go:build linux

package childproc

import (
	"context"

	"github.com/procsup/procsup/messages/wire"
)

// Handler is a child program's side of the protocol, driven by [Serve].
type Handler interface {
	// Init runs once, with the parent's InitializeRequest (its Payload is the
	// application's configuration). An error goes back to the parent as the
	// initialization error and Serve returns.
	Init(ctx context.Context, req *wire.InitializeRequest) error
	// Run is the child's work. Its context is cancelled when the parent asks for
	// shutdown or goes away; Serve waits for Run to return. When Run returns by itself,
	// the child exits: nil means success.
	Run(ctx context.Context, p *Peer) error
}

// MessageHandler is implemented by a Handler that takes one-way messages from the
// parent. Messages are delivered in order, one at a time.
type MessageHandler interface {
	HandleMessage(ctx context.Context, p *Peer, m *wire.Message)
}

// RequestHandler is implemented by a Handler that answers requests from the parent.
// Requests are handled concurrently; the returned body or error goes back as the reply.
type RequestHandler interface {
	HandleRequest(ctx context.Context, p *Peer, r *wire.Request) ([]byte, error)
}

// HandlerFuncs is a [Handler], [MessageHandler] and [RequestHandler] made of functions;
// any of them may be nil. A nil RunFunc waits for shutdown; a nil RequestFunc answers
// every request with an error.
type HandlerFuncs struct {
	InitFunc    func(ctx context.Context, req *wire.InitializeRequest) error
	RunFunc     func(ctx context.Context, p *Peer) error
	MessageFunc func(ctx context.Context, p *Peer, m *wire.Message)
	RequestFunc func(ctx context.Context, p *Peer, r *wire.Request) ([]byte, error)
	// QuickRequests says that RequestFunc is quick and never waits (see
	// [QuickRequestHandler]): the read loop answers each request itself.
	QuickRequests bool
}

// QuickRequestHandler is implemented by a [RequestHandler] whose requests are quick and
// never wait: no I/O that can block, no [Peer.Request], no lock held for long. When
// Quick reports true, the read loop answers each request itself, in order, instead of
// starting a goroutine per request. A request that waits holds up everything behind it, pings included (the parent then
// reports a high ping, or kills the child as unresponsive); a handler that calls
// Peer.Request deadlocks, since its reply is read by the loop it holds.
type QuickRequestHandler interface {
	RequestHandler
	Quick() bool
}

// Quick implements [QuickRequestHandler]: HandlerFuncs.QuickRequests.
func (h HandlerFuncs) Quick() bool { return h.QuickRequests }

// Init calls InitFunc.
func (h HandlerFuncs) Init(ctx context.Context, req *wire.InitializeRequest) error {
	if h.InitFunc == nil {
		return nil
	}
	return h.InitFunc(ctx, req)
}

// Run calls RunFunc, or waits for ctx.
func (h HandlerFuncs) Run(ctx context.Context, p *Peer) error {
	if h.RunFunc == nil {
		<-ctx.Done()
		return nil
	}
	return h.RunFunc(ctx, p)
}

// HandleMessage calls MessageFunc.
func (h HandlerFuncs) HandleMessage(ctx context.Context, p *Peer, m *wire.Message) {
	if h.MessageFunc != nil {
		h.MessageFunc(ctx, p, m)
	}
}

// HandleRequest calls RequestFunc.
func (h HandlerFuncs) HandleRequest(ctx context.Context, p *Peer, r *wire.Request) ([]byte, error) {
	if h.RequestFunc == nil {
		return nil, &UnhandledError{Kind: r.Kind}
	}
	return h.RequestFunc(ctx, p, r)
}

// UnhandledError is the reply to a request the child has no handler for.
type UnhandledError struct{ Kind string }

// Error implements error.
func (e *UnhandledError) Error() string { return "no handler for request kind " + e.Kind }
