//go:build linux

package childproc

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/procsup/procsup/messages/wire"
)

const (
	// DefaultSilenceGrace is added to the parent's ping timeout: a child that hears
	// nothing from its parent for that long presumes the parent gone and exits. The
	// environment variable [EnvSilenceGrace] overrides it.
	DefaultSilenceGrace = 10 * time.Second
	// EnvSilenceGrace, when set to a Go duration ("500ms"), replaces
	// [DefaultSilenceGrace]; tests use it to see the silence rule work quickly.
	EnvSilenceGrace = "PROCSUP_SILENCE_GRACE"
	// HandshakeTimeout bounds how long [Serve] waits for the InitializeRequest.
	HandshakeTimeout = time.Minute
	// LogFlushTimeout bounds how long [Serve] waits, at the end, for buffered log records
	// to reach the parent.
	LogFlushTimeout = 2 * time.Second
	// runGrace is how long Serve waits for Run to return once the parent is gone.
	runGrace = time.Second
	// InitCancelGrace is how long [Serve] waits for Init to return once its context is
	// cancelled (a ShutdownRequest came, or the parent is gone): an Init that ignores its
	// context (a model load in C, a sleep) is left running, and Serve returns.
	InitCancelGrace = 500 * time.Millisecond
	// MessageQueueBytes bounds the one-way messages (their bodies' bytes) waiting for a
	// slow message handler. Below it the read loop never waits, so pings are answered
	// whatever the handler does; above it the read loop waits for the handler.
	MessageQueueBytes = 64 << 20
)

// Serve runs a child program's side of the protocol until the child should exit: it
// finds its sockets from [EnvFDs], answers the InitializeRequest with h.Init's result,
// answers every ping, delivers messages and requests to h, and runs h.Run. The child's
// slog records go to the parent through [Peer.Logger].
//
// A ShutdownRequest that comes while Init runs cancels Init's context; Serve then skips
// Run and returns nil, within [InitCancelGrace] even if Init has not returned. A panic in Init or Run ends the child with a [*PanicError] (the
// panic and its stack go to the parent, in a log record and in Exiting); a panic in a
// message or request handler is logged, a request gets an error reply, and the child
// carries on.
//
// At the end, Serve waits up to a second for the message and request handlers still at
// work (their context is cancelled), so that what they log is counted; messages not yet
// handled are dropped, and later requests are answered with an error.
//
// It returns nil after a shutdown the parent asked for (Run has returned, logs are
// flushed and Exiting was sent) or when Run returned nil by itself; Run's error when Run
// failed; an [*InitError] when Init failed; [ErrParentGone] when the control socket
// reached end of stream; [ErrParentSilent] when nothing came from the parent for its ping
// timeout plus [DefaultSilenceGrace]; a [*ProtocolError] when the parent broke the protocol; and
// [ErrNotChild] in a process procsup did not start.
func Serve(ctx context.Context, h Handler) error {
	control, logs, err := openFDs()
	if err != nil {
		return err
	}
	defer control.Close()
	defer logs.Close()
	s := &session{
		h:       h,
		control: control,
		r:       wire.NewReader(control, 0),
		w:       wire.NewWriter(control, 0),
		logs:    newLogSink(wire.NewWriter(logs, 0)),
	}
	return s.serve(ctx)
}

// openFDs returns the control and log sockets named by EnvFDs: close-on-exec (a
// grandchild inherits neither) and non-blocking (read through the netpoller, with
// deadlines). It uses os.File rather than package net, whose resolver would link cgo and
// make every child a dynamically linked program that starts slower.
func openFDs() (control, logs *os.File, err error) {
	v, ok := os.LookupEnv(EnvFDs)
	if !ok {
		return nil, nil, ErrNotChild
	}
	c, l, _ := strings.Cut(strings.TrimSpace(v), ",")
	cfd, cerr := strconv.Atoi(c)
	lfd, lerr := strconv.Atoi(l)
	if cerr != nil || lerr != nil || cfd < 3 || lfd < 3 {
		return nil, nil, notChild(EnvFDs + "=" + strconv.Quote(v) + " is not two descriptors")
	}
	open := func(fd int, name string) (*os.File, error) {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
			return nil, notChild("descriptor " + strconv.Itoa(fd) + " (" + name + ") is not a socket")
		}
		syscall.CloseOnExec(fd)
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, notChild("descriptor " + strconv.Itoa(fd) + " (" + name + "): " + err.Error())
		}
		return os.NewFile(uintptr(fd), name), nil
	}
	if control, err = open(cfd, "control"); err != nil {
		return nil, nil, err
	}
	if logs, err = open(lfd, "logs"); err != nil {
		control.Close()
		return nil, nil, err
	}
	return control, logs, nil
}

type session struct {
	h       Handler
	control *os.File
	r       *wire.Reader
	w       *wire.Writer
	logs    *logSink
	peer    *Peer
	idle    atomic.Int64 // once running: the silence after which the parent is presumed gone
	queue   *messageQueue
	calls   inflight // message and request handlers under way

	shutdownReason string // set by the read loop before it cancels with errShutdown
}

func (s *session) serve(ctx context.Context) error {
	req, err := s.handshake()
	if err != nil {
		s.logs.close(LogFlushTimeout)
		return err
	}
	// The parent accepts frames up to its MaxFrame: nothing larger is sent, logs included.
	s.w.SetLimit(req.MaxFrame, "to the parent")
	s.w.SetFragments(req.Fragments)
	s.logs.w.SetLimit(req.MaxFrame, "to the parent")
	s.peer = &Peer{w: s.w, logs: s.logs, init: req, pending: map[uint64]chan *wire.Reply{}}

	// The read loop runs from the handshake on: a ShutdownRequest during Init cancels
	// Init's context, and later every ping is answered whatever the handlers do.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.queue = newMessageQueue(MessageQueueBytes)
	s.calls.cond.L = &s.calls.mu
	// A handler with nothing to initialize is ready at once: its answer goes out before
	// the read loop starts (the child's start to ready is what users wait for).
	initless := initless(s.h)
	var answerErr error
	if initless {
		answerErr = s.answer()
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readLoop(runCtx, cancel)
	}()

	var result error
	var reason, panicked string
	var initFailed *wire.InitializeResponse // the last word instead of Exiting
	var initErr error
	if !initless {
		initErr = s.initWithin(runCtx, req)
	}
	var panicErr *PanicError
	switch cause := context.Cause(runCtx); {
	case cause == errShutdown:
		reason = s.shutdownWord() + " during initialization"
	case cause != nil && initErr != nil && !errors.As(initErr, &panicErr):
		result, reason = cause, cause.Error() // the parent went away while Init ran
	case initErr != nil:
		initFailed = &wire.InitializeResponse{Error: initErr.Error()}
		result = &InitError{Err: initErr}
		if errors.As(initErr, &panicErr) {
			result = panicErr
		}
	default:
		if !initless {
			answerErr = s.answer()
		}
		if answerErr != nil {
			result, reason = ErrParentGone, ErrParentGone.Error()
			break
		}
		if req.PingTimeout > 0 {
			idle := req.PingTimeout + silenceGrace()
			s.idle.Store(int64(idle))
			s.control.SetReadDeadline(time.Now().Add(idle))
		}
		result, reason, panicked = s.run(ctx, runCtx, cancel)
	}
	// The handlers still at work (their context is cancelled) get runGrace to finish, so
	// that what they log is counted in Exiting; messages not yet handled are dropped.
	s.queue.close()
	s.calls.drain(runGrace)
	s.logs.close(LogFlushTimeout)
	if initFailed != nil {
		s.w.Write(initFailed)
	} else {
		s.w.Write(&wire.Exiting{Reason: reason, LogRecords: s.logs.taken(), Panic: panicked})
	}
	s.control.Close()
	<-readDone
	s.peer.closePending()
	return result
}

// initWithin calls the handler's Init and returns its error, or ctx's cause
// InitCancelGrace after ctx is cancelled if Init has not returned by then (it goes on,
// ignored: the program is about to exit).
func (s *session) initWithin(ctx context.Context, req *wire.InitializeRequest) error {
	done := make(chan error, 1)
	go func() { done <- s.callInit(ctx, req) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(InitCancelGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return context.Cause(ctx)
	}
}

// run runs the handler's Run until it returns, the parent asks for shutdown, or the
// parent is gone, and says how it ended: Serve's result, the reason for Exiting, and the
// panic, if Run panicked.
func (s *session) run(ctx, runCtx context.Context, cancel context.CancelCauseFunc) (result error, reason, panicked string) {
	runDone := make(chan error, 1)
	go func() { runDone <- s.callRun(runCtx) }()
	var runErr error
	select {
	case runErr = <-runDone:
	case <-runCtx.Done():
		if context.Cause(runCtx) == errShutdown {
			runErr = <-runDone // the parent's close timeout bounds this
		} else {
			select {
			case runErr = <-runDone:
			case <-time.After(runGrace):
			}
		}
	}
	cause := context.Cause(runCtx)
	cancel(nil)
	var p *PanicError
	switch {
	case errors.As(runErr, &p):
		return p, "panic: " + p.Value, p.Value + "\n\n" + p.Stack
	case cause == errShutdown:
		return nil, s.shutdownWord(), ""
	case cause != nil && ctx.Err() == nil:
		return cause, cause.Error(), "" // the parent is gone, silent or broke the protocol
	case cause != nil:
		return nil, "stopped: " + cause.Error(), ""
	case runErr != nil:
		return runErr, "run failed: " + runErr.Error(), ""
	}
	return nil, "run returned", ""
}

func (s *session) shutdownWord() string {
	if s.shutdownReason != "" {
		return "shutdown requested: " + s.shutdownReason
	}
	return "shutdown requested"
}

// callInit calls the handler's Init, turning a panic into a [*PanicError].
func (s *session) callInit(ctx context.Context, req *wire.InitializeRequest) (err error) {
	defer s.recoverInto(&err, "Init")
	return s.h.Init(ctx, req)
}

// answer sends the InitializeResponse of a successful initialization, with the child's
// frame cap.
func (s *session) answer() error {
	return s.w.Write(&wire.InitializeResponse{MaxFrame: s.r.Limit(), Fragments: true})
}

// initless reports whether h has nothing to initialize: a HandlerFuncs without InitFunc.
func initless(h Handler) bool {
	switch f := h.(type) {
	case HandlerFuncs:
		return f.InitFunc == nil
	case *HandlerFuncs:
		return f != nil && f.InitFunc == nil
	}
	return false
}

// callRun calls the handler's Run, turning a panic into a [*PanicError].
func (s *session) callRun(ctx context.Context) (err error) {
	defer s.recoverInto(&err, "Run")
	return s.h.Run(ctx, s.peer)
}

// recoverInto recovers a panic of the handler's method where, logs it with its stack
// (the record reaches the parent) and sets *err to a [*PanicError]. It must be deferred
// directly.
func (s *session) recoverInto(err *error, where string) {
	v := recover()
	if v == nil {
		return
	}
	p := recovered(v)
	s.logs.panicked(where, p)
	*err = p
}

// handshake reads the InitializeRequest.
func (s *session) handshake() (*wire.InitializeRequest, error) {
	s.control.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	defer s.control.SetReadDeadline(time.Time{})
	m, err := s.r.Read()
	if err != nil {
		return nil, readError("handshake", err)
	}
	req, ok := m.(*wire.InitializeRequest)
	if !ok {
		return nil, &ProtocolError{Op: "handshake", Err: errors.New("first message is " + string(m.WireType()) + ", want " + string(wire.TypeInitializeRequest))}
	}
	return req, nil
}

func readError(op string, err error) error {
	switch {
	case errors.Is(err, wire.ErrClosed), errors.Is(err, os.ErrClosed):
		return ErrParentGone
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrParentSilent
	}
	return &ProtocolError{Op: op, Err: err}
}

// readLoop reads control frames until the socket ends, answering pings at once. It never
// waits for a handler: messages wait in a queue of up to MessageQueueBytes for the
// message handler, and each request runs in its own goroutine, except a quick handler's
// (QuickRequestHandler), which the loop answers itself.
func (s *session) readLoop(runCtx context.Context, cancel context.CancelCauseFunc) {
	q := s.queue
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // one at a time, in order
		defer wg.Done()
		mh, _ := s.h.(MessageHandler)
		for {
			m, ok := q.take()
			if !ok || !s.calls.begin() {
				return
			}
			if mh != nil {
				s.handleMessage(runCtx, mh, m)
			}
			s.calls.end()
		}
	}()
	defer wg.Wait()
	defer q.close()
	rh, _ := s.h.(RequestHandler)
	// A quick handler's replies are written in turn from this one value, not allocated
	// each: a reply made for each request would come from the allocator's memory of
	// whichever core (P) the loop runs on, new to the first requests, page faults included.
	var quickReply wire.Reply
	quick := false
	if qh, ok := s.h.(QuickRequestHandler); ok {
		quick = qh.Quick()
	}
	for {
		m, err := s.r.Read()
		if errors.Is(err, wire.ErrUnknownType) {
			s.logs.say(levelWarn, "procsup: ignoring a message of unknown type", "error", err.Error())
			continue
		}
		if err != nil {
			cancel(readError("read", err))
			return
		}
		if d := s.idle.Load(); d > 0 {
			s.control.SetReadDeadline(time.Now().Add(time.Duration(d)))
		}
		switch m := m.(type) {
		case *wire.PingRequest:
			s.w.Write(&wire.PongResponse{SentAt: m.SentAt, ChildTime: time.Now().UnixNano()})
		case *wire.ShutdownRequest:
			if runCtx.Err() == nil {
				s.shutdownReason = m.Reason
				cancel(errShutdown)
			}
		case *wire.Message:
			q.put(m)
		case *wire.Request:
			if !s.calls.begin() {
				s.w.Write(&wire.Reply{ID: m.ID, Error: "the child is shutting down", Code: wire.CodeShuttingDown})
				continue
			}
			if quick {
				quickReply = wire.Reply{ID: m.ID}
				s.handleRequest(runCtx, rh, m, &quickReply)
				quickReply = wire.Reply{} // holds nothing of the handler's
				s.calls.end()
				continue
			}
			go func() {
				defer s.calls.end()
				s.handleRequest(runCtx, rh, m, &wire.Reply{ID: m.ID})
			}()
		case *wire.Reply:
			s.peer.deliver(m)
		default:
			cancel(&ProtocolError{Op: "read", Err: errors.New("unexpected " + string(m.WireType()) + " from the parent")})
			return
		}
	}
}

// handleMessage runs the message handler; a panic in it is logged (the record reaches
// the parent) and the child carries on.
func (s *session) handleMessage(ctx context.Context, mh MessageHandler, m *wire.Message) {
	defer func() {
		if v := recover(); v != nil {
			s.logs.panicked("HandleMessage", recovered(v))
		}
	}()
	mh.HandleMessage(ctx, s.peer, m)
}

// handleRequest answers r with the request handler's result, in reply (whose ID is
// r's). A panic in the handler is logged and answered as an error ([wire.CodePanic]); a
// reply larger than the parent accepts is answered as an error ([wire.CodeFrameTooLarge])
// instead.
func (s *session) handleRequest(ctx context.Context, rh RequestHandler, r *wire.Request, reply *wire.Reply) {
	func() {
		defer func() {
			if v := recover(); v != nil {
				p := recovered(v)
				s.logs.panicked("HandleRequest", p)
				reply.Body, reply.Error, reply.Code = nil, p.Error(), wire.CodePanic
			}
		}()
		if rh == nil {
			reply.Error, reply.Code = (&UnhandledError{Kind: r.Kind}).Error(), wire.CodeUnhandled
			return
		}
		body, err := rh.HandleRequest(ctx, s.peer, r)
		if err != nil {
			var u *UnhandledError
			if errors.As(err, &u) {
				reply.Code = wire.CodeUnhandled
			}
			reply.Error = err.Error()
			return
		}
		reply.Body = body
	}()
	if err := s.w.Write(reply); errors.Is(err, wire.ErrFrameTooLarge) {
		s.w.Write(&wire.Reply{ID: r.ID, Error: "reply not sent: " + err.Error(), Code: wire.CodeFrameTooLarge})
	}
}

func silenceGrace() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(EnvSilenceGrace)); err == nil && d >= 0 {
		return d
	}
	return DefaultSilenceGrace
}

// The exit codes [Main] gives Serve's results (see [ExitCode]).
const (
	ExitOK       = 0  // a shutdown the parent asked for, or Run returned nil
	ExitFailure  = 1  // Run failed, Init failed, the parent is gone or broke the protocol
	ExitNotChild = 2  // not started by procsup
	ExitPanic    = 70 // the handler's Init or Run panicked (EX_SOFTWARE)
)

// ExitCode is the exit code [Main] uses for Serve's result: [ExitOK] for nil,
// [ExitNotChild] for [ErrNotChild], [ExitPanic] for a [*PanicError], [ExitFailure]
// otherwise.
func ExitCode(err error) int {
	var p *PanicError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrNotChild):
		return ExitNotChild
	case errors.As(err, &p):
		return ExitPanic
	}
	return ExitFailure
}

// Main runs [Serve] with h and exits the process with [ExitCode] of its result, printing
// a failure to stderr. Use it as the whole main of a child program.
func Main(h Handler) {
	err := Serve(context.Background(), h)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
	}
	os.Exit(ExitCode(err))
}
