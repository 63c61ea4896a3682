package wire

import "time"

// Type names a wire message. Type names are part of the protocol and never change.
type Type string

// The wire message types. See PROTOCOL.md for their fields.
const (
	TypeInitializeRequest  Type = "initialize_request"
	TypeInitializeResponse Type = "initialize_response"
	TypePingRequest        Type = "ping_request"
	TypePongResponse       Type = "pong_response"
	TypeShutdownRequest    Type = "shutdown_request"
	TypeExiting            Type = "exiting"
	TypeLogRecord          Type = "log_record"
	TypeMessage            Type = "message"
	TypeRequest            Type = "request"
	TypeReply              Type = "reply"
	TypeFragment           Type = "fragment"
)

// Wire is a message that crosses the socket between parent and child.
type Wire interface {
	WireType() Type
}

// InitializeRequest is the parent's first message: the ping settings the child should
// expect, and an opaque payload for the child's own configuration.
//
// MaxFrame is the largest frame body the parent accepts from the child: the child must not
// send a larger one (0, from an older parent, means [DefaultMaxFrame]).
type InitializeRequest struct {
	PingInterval      time.Duration `msgpack:"ping_interval_ns"`
	PingTimeout       time.Duration `msgpack:"ping_timeout_ns"`
	HighPingThreshold time.Duration `msgpack:"high_ping_threshold_ns"`
	Debug             bool          `msgpack:"debug"`
	Payload           []byte        `msgpack:"payload"`
	MaxFrame          int           `msgpack:"max_frame"`
	Fragments         bool          `msgpack:"fragments"` // the parent reads fragment frames
}

// InitializeResponse is the child's first message. Error is empty when initialization
// succeeded. MaxFrame is the largest frame body the child accepts from the parent: the
// parent sends nothing larger (0 means [DefaultMaxFrame]).
type InitializeResponse struct {
	Error     string `msgpack:"error"`
	MaxFrame  int    `msgpack:"max_frame"`
	Fragments bool   `msgpack:"fragments"` // the child reads fragment frames
}

// PingRequest carries the parent's send time, in the parent's monotonic nanoseconds; the
// child echoes it so that the parent measures a round trip on its own clock.
type PingRequest struct {
	SentAt int64 `msgpack:"sent_at_ns"`
}

// PongResponse echoes a PingRequest's SentAt and adds the child's wall clock (Unix
// nanoseconds) when it answered.
type PongResponse struct {
	SentAt    int64 `msgpack:"sent_at_ns"`
	ChildTime int64 `msgpack:"child_time_ns"`
}

// ShutdownRequest asks the child to end its work and exit.
type ShutdownRequest struct {
	Reason string `msgpack:"reason"`
}

// Exiting is the child's last control message before it exits. LogRecords is how many
// log records the child's logger took in all (sent or dropped): the parent counts what
// did not reach it against it. Panic is set when the child ends because its code
// panicked: the panic's value and the stack.
type Exiting struct {
	Reason     string `msgpack:"reason"`
	LogRecords uint64 `msgpack:"log_records"`
	Panic      string `msgpack:"panic,omitempty"`
}

// Attr is one attribute of a LogRecord. Kind says how to read Value: "string", "int"
// (int64), "uint" (uint64), "float" (float64), "bool", "time" (Unix nanoseconds),
// "duration" (nanoseconds), "any" (a string rendering) or "group" (Value is empty and
// Group holds the members).
//
// A zero value travels as itself (0, false, ""), never omitted; a receiver reads a missing
// or nil value as the zero of its kind.
type Attr struct {
	Key   string `msgpack:"key"`
	Kind  string `msgpack:"kind"`
	Value any    `msgpack:"value"`
	Group []Attr `msgpack:"group,omitempty"`
}

// Source is the source location of a log call.
type Source struct {
	Function string `msgpack:"function"`
	File     string `msgpack:"file"`
	Line     int    `msgpack:"line"`
}

// LogRecord is one child log record, sent on the log socket. Level uses slog's numbering
// (DEBUG -4, INFO 0, WARN 4, ERROR 8). Dropped counts the records the child dropped
// since the previous record it sent, because the parent was not reading. Seq numbers every
// record the child's logger took, from 1, sent or dropped: a gap is records dropped.
type LogRecord struct {
	Time    int64   `msgpack:"time_ns"`
	Level   int     `msgpack:"level"`
	Message string  `msgpack:"message"`
	Logger  string  `msgpack:"logger"`
	Attrs   []Attr  `msgpack:"attrs"`
	Source  *Source `msgpack:"source,omitempty"`
	Dropped uint64  `msgpack:"dropped,omitempty"`
	Seq     uint64  `msgpack:"seq,omitempty"`
}

// Message is a one-way application message, in either direction. Body is the
// application's own msgpack (or any bytes).
type Message struct {
	Kind string `msgpack:"kind"`
	Body []byte `msgpack:"body"`
}

// Request is an application request, in either direction; the receiver answers with a
// Reply carrying the same ID. IDs are chosen by the sender and unique among its
// outstanding requests.
type Request struct {
	ID   uint64 `msgpack:"id"`
	Kind string `msgpack:"kind"`
	Body []byte `msgpack:"body"`
}

// Reply answers a Request. Error is non-empty when the request failed; Body is then empty.
// Code, when set, classifies the failure for programs: one of the Code constants.
type Reply struct {
	ID    uint64 `msgpack:"id"`
	Body  []byte `msgpack:"body"`
	Error string `msgpack:"error"`
	Code  string `msgpack:"code,omitempty"`
}

// The codes of a failed [Reply].
const (
	// CodeFrameTooLarge: the reply was larger than the asker accepts, so it was not sent.
	CodeFrameTooLarge = "frame_too_large"
	// CodePanic: the handler panicked.
	CodePanic = "panic"
	// CodeUnhandled: the receiver has no handler for the request's kind.
	CodeUnhandled = "unhandled"
	// CodeShuttingDown: the receiver is shutting down and handles no more requests.
	CodeShuttingDown = "shutting_down"
)

// Fragment carries one part of a large frame, so that the small frames of the same
// direction (pings, pongs) go between its parts instead of waiting behind it. The Parts
// of consecutive fragments, concatenated, are one frame body; Size, on the first fragment,
// is that body's length; More is false on the last. A side sends fragments only to a peer
// that announced it reads them (Fragments in the handshake); [Reader] reassembles them.
type Fragment struct {
	Size uint64 `msgpack:"size,omitempty"`
	More bool   `msgpack:"more"`
	Part []byte `msgpack:"part"`
}

// WireType implements Wire.
func (*Fragment) WireType() Type { return TypeFragment }

// WireType implements Wire.
func (*InitializeRequest) WireType() Type { return TypeInitializeRequest }

// WireType implements Wire.
func (*InitializeResponse) WireType() Type { return TypeInitializeResponse }

// WireType implements Wire.
func (*PingRequest) WireType() Type { return TypePingRequest }

// WireType implements Wire.
func (*PongResponse) WireType() Type { return TypePongResponse }

// WireType implements Wire.
func (*ShutdownRequest) WireType() Type { return TypeShutdownRequest }

// WireType implements Wire.
func (*Exiting) WireType() Type { return TypeExiting }

// WireType implements Wire.
func (*LogRecord) WireType() Type { return TypeLogRecord }

// WireType implements Wire.
func (*Message) WireType() Type { return TypeMessage }

// WireType implements Wire.
func (*Request) WireType() Type { return TypeRequest }

// WireType implements Wire.
func (*Reply) WireType() Type { return TypeReply }

// newWire returns a zero message of type t, twice: as a Wire and as the fields it
// decodes (two conversions the compiler makes, not an assertion the runtime looks up).
// It returns nils when t is unknown.
func newWire(t []byte) (Wire, fields) {
	switch string(t) {
	case string(TypeInitializeRequest):
		m := new(InitializeRequest)
		return m, m
	case string(TypeInitializeResponse):
		m := new(InitializeResponse)
		return m, m
	case string(TypePingRequest):
		m := new(PingRequest)
		return m, m
	case string(TypePongResponse):
		m := new(PongResponse)
		return m, m
	case string(TypeShutdownRequest):
		m := new(ShutdownRequest)
		return m, m
	case string(TypeExiting):
		m := new(Exiting)
		return m, m
	case string(TypeLogRecord):
		m := new(LogRecord)
		return m, m
	case string(TypeMessage):
		m := new(Message)
		return m, m
	case string(TypeRequest):
		m := new(Request)
		return m, m
	case string(TypeReply):
		m := new(Reply)
		return m, m
	case string(TypeFragment):
		m := new(Fragment)
		return m, m
	}
	return nil, nil
}

// codecOf returns m's codec, nil for a type not of this package. A type switch, not an
// assertion to an interface: the runtime would build the table entry of each type at
// its first assertion (in a child, at its first reply); these conversions the compiler
// makes.
func codecOf(m Wire) fieldCodec {
	switch m := m.(type) {
	case *InitializeRequest:
		return m
	case *InitializeResponse:
		return m
	case *PingRequest:
		return m
	case *PongResponse:
		return m
	case *ShutdownRequest:
		return m
	case *Exiting:
		return m
	case *LogRecord:
		return m
	case *Message:
		return m
	case *Request:
		return m
	case *Reply:
		return m
	case *Fragment:
		return m
	}
	return nil
}
