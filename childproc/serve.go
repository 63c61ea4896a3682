package childproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/procsup/procsup/messages"
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
)

// Serve runs a child program's side of the protocol until the child should exit: it
// finds its sockets from [EnvFDs], answers the InitializeRequest with h.Init's result,
// answers every ping, delivers messages and requests to h, and runs h.Run. The child's
// slog records go to the parent through [Peer.Logger].
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
		r:       messages.NewReader(control, 0),
		w:       messages.NewWriter(control, 0),
		logs:    NewLogHandler(messages.NewWriter(logs, 0), 0, nil),
	}
	return s.serve(ctx)
}

// openFDs returns the control and log sockets named by EnvFDs.
func openFDs() (control, logs net.Conn, err error) {
	v, ok := os.LookupEnv(EnvFDs)
	if !ok {
		return nil, nil, ErrNotChild
	}
	var cfd, lfd int
	if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d,%d", &cfd, &lfd); err != nil || cfd < 3 || lfd < 3 {
		return nil, nil, fmt.Errorf("%w: %s=%q is not two descriptors", ErrNotChild, EnvFDs, v)
	}
	open := func(fd int, name string) (net.Conn, error) {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			return nil, fmt.Errorf("%w: descriptor %d (%s): %v", ErrNotChild, fd, name, err)
		}
		return c, nil
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
	control net.Conn
	r       *messages.Reader
	w       *messages.Writer
	logs    *LogHandler
	peer    *Peer

	shutdownReason string // set by the read loop before it cancels with errShutdown
}

func (s *session) serve(ctx context.Context) error {
	req, err := s.handshake()
	if err != nil {
		s.logs.Close(LogFlushTimeout)
		return err
	}
	s.peer = &Peer{w: s.w, logger: slog.New(s.logs), init: req, pending: map[uint64]chan *messages.Reply{}}
	if err := s.h.Init(ctx, req); err != nil {
		s.logs.Close(LogFlushTimeout)
		s.w.Write(&messages.InitializeResponse{Error: err.Error()})
		return &InitError{Err: err}
	}
	if err := s.w.Write(&messages.InitializeResponse{}); err != nil {
		return ErrParentGone
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var idle time.Duration
	if req.PingTimeout > 0 {
		idle = req.PingTimeout + silenceGrace()
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readLoop(runCtx, cancel, idle)
	}()

	runDone := make(chan error, 1)
	go func() { runDone <- s.h.Run(runCtx, s.peer) }()
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

	var result error
	var reason string
	switch {
	case cause == errShutdown:
		reason = "shutdown requested"
		if s.shutdownReason != "" {
			reason += ": " + s.shutdownReason
		}
	case cause != nil && ctx.Err() == nil:
		result, reason = cause, cause.Error() // the parent is gone, silent or broke the protocol
	case cause != nil:
		reason = "stopped: " + cause.Error()
	case runErr != nil:
		result, reason = runErr, "run failed: "+runErr.Error()
	default:
		reason = "run returned"
	}
	s.logs.Close(LogFlushTimeout)
	s.w.Write(&messages.Exiting{Reason: reason})
	s.control.Close()
	<-readDone
	s.peer.closePending()
	return result
}

// handshake reads the InitializeRequest.
func (s *session) handshake() (*messages.InitializeRequest, error) {
	s.control.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	defer s.control.SetReadDeadline(time.Time{})
	m, err := s.r.Read()
	if err != nil {
		return nil, readError("handshake", err)
	}
	req, ok := m.(*messages.InitializeRequest)
	if !ok {
		return nil, &ProtocolError{Op: "handshake", Err: fmt.Errorf("first message is %s, want %s", m.WireType(), messages.TypeInitializeRequest)}
	}
	return req, nil
}

func readError(op string, err error) error {
	switch {
	case errors.Is(err, messages.ErrClosed), errors.Is(err, net.ErrClosed):
		return ErrParentGone
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrParentSilent
	}
	return &ProtocolError{Op: op, Err: err}
}

// readLoop reads control frames until the socket ends, answering pings at once.
func (s *session) readLoop(runCtx context.Context, cancel context.CancelCauseFunc, idle time.Duration) {
	msgs := make(chan *messages.Message, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // one at a time, in order
		defer wg.Done()
		mh, _ := s.h.(MessageHandler)
		for {
			select {
			case m := <-msgs:
				if mh != nil {
					mh.HandleMessage(runCtx, s.peer, m)
				}
			case <-stop:
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	rh, _ := s.h.(RequestHandler)
	for {
		if idle > 0 {
			s.control.SetReadDeadline(time.Now().Add(idle))
		}
		m, err := s.r.Read()
		if errors.Is(err, messages.ErrUnknownType) {
			s.peer.logger.Warn("procsup: ignoring a message of unknown type", "error", err)
			continue
		}
		if err != nil {
			cancel(readError("read", err))
			return
		}
		switch m := m.(type) {
		case *messages.PingRequest:
			s.w.Write(&messages.PongResponse{SentAt: m.SentAt, ChildTime: time.Now().UnixNano()})
		case *messages.ShutdownRequest:
			if runCtx.Err() == nil {
				s.shutdownReason = m.Reason
				cancel(errShutdown)
			}
		case *messages.Message:
			select {
			case msgs <- m:
			case <-runCtx.Done():
			}
		case *messages.Request:
			go func() {
				var body []byte
				err := error(&UnhandledError{Kind: m.Kind})
				if rh != nil {
					body, err = rh.HandleRequest(runCtx, s.peer, m)
				}
				reply := &messages.Reply{ID: m.ID, Body: body}
				if err != nil {
					reply.Body, reply.Error = nil, err.Error()
				}
				s.w.Write(reply)
			}()
		case *messages.Reply:
			s.peer.deliver(m)
		default:
			cancel(&ProtocolError{Op: "read", Err: fmt.Errorf("unexpected %s from the parent", m.WireType())})
			return
		}
	}
}

func silenceGrace() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(EnvSilenceGrace)); err == nil && d >= 0 {
		return d
	}
	return DefaultSilenceGrace
}

// ExitCode is the exit code [Main] uses for Serve's result: 0 for nil, 2 for
// [ErrNotChild], 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotChild):
		return 2
	}
	return 1
}

// Main runs [Serve] with h and exits the process with [ExitCode] of its result, printing
// a failure to stderr. Use it as the whole main of a child program.
func Main(h Handler) {
	err := Serve(context.Background(), h)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(ExitCode(err))
}
