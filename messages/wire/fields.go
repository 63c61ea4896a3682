package wire

import (
	"bytes"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// The messages of every start and every round trip (the handshake, pings, shutdown and
// exit, messages, requests, replies and fragments) are encoded and decoded field by field
// with msgpack's primitives: no reflection, and no per-type cache for a child to build on
// its first frames. The bytes are those msgpack's reflective encoder writes for the same
// struct, and the decoder reads what it reads (by name, in any order, unknown fields
// skipped, nil as zero): TestFieldCodecsMatchMsgpack and FuzzDecode check both. LogRecord,
// with its open-ended attribute values, takes the reflective way.

// A large message's body is not copied out of its frame: the frame was read (or
// reassembled from fragments) into a buffer of its own, so its Body may point into it.
// That spares a copy of up to the frame cap, and the stall of touching fresh memory for
// it, on the goroutine that also reads the pongs.

// aliasAbove is the frame size above which Message, Request and Reply bodies alias their
// frame: above the frames a Reader reads into its reused buffer.
const aliasAbove = scratchMax

// fieldCodec is a message encoded and decoded field by field.
type fieldCodec interface {
	Wire
	// encodeFields writes the message's map: its length, then each key and value.
	encodeFields(e *msgpack.Encoder) error
	// decodeField reads the value of key from d into the message.
	decodeField(d *fieldDecoder, key string) error
}

// fieldDecoder reads field values from a frame body. A bytes field aliases the frame
// when alias is set (the frame is a buffer of its own), and is copied out otherwise.
type fieldDecoder struct {
	dec   *msgpack.Decoder
	br    *bytes.Reader // what dec reads: the frame, from its start
	frame []byte
	alias bool
}

// decodeFields reads m's map from d: a nil leaves m zero.
func decodeFields(d *fieldDecoder, m fieldCodec) error {
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return err
	}
	for range max(n, 0) {
		key, err := d.dec.DecodeString()
		if err != nil {
			return err
		}
		if err := m.decodeField(d, key); err != nil {
			return err
		}
	}
	return nil
}

func (d *fieldDecoder) skip() error { return d.dec.Skip() }

func (d *fieldDecoder) bytes(p *[]byte) error {
	l, err := d.dec.DecodeBytesLen()
	if err != nil || l < 0 {
		*p = nil
		return err
	}
	at := len(d.frame) - d.br.Len()
	if at+l > len(d.frame) {
		return io.ErrUnexpectedEOF
	}
	if d.alias {
		*p = d.frame[at : at+l : at+l]
	} else {
		*p = append(make([]byte, 0, l), d.frame[at:at+l]...)
	}
	_, err = d.br.Seek(int64(l), io.SeekCurrent)
	return err
}

func (d *fieldDecoder) str(p *string) (err error) {
	*p, err = d.dec.DecodeString()
	return err
}

func (d *fieldDecoder) int64(p *int64) (err error) {
	*p, err = d.dec.DecodeInt64()
	return err
}

func (d *fieldDecoder) int(p *int) error {
	n, err := d.dec.DecodeInt64()
	*p = int(n)
	return err
}

func (d *fieldDecoder) uint64(p *uint64) (err error) {
	*p, err = d.dec.DecodeUint64()
	return err
}

func (d *fieldDecoder) bool(p *bool) (err error) {
	*p, err = d.dec.DecodeBool()
	return err
}

// fieldEncoder writes a map's keys and values, keeping the first error: the encoders
// below read as the list of their fields.
type fieldEncoder struct {
	e   *msgpack.Encoder
	err error
}

func (f *fieldEncoder) begin(n int) { f.err = f.e.EncodeMapLen(n) }

func (f *fieldEncoder) key(k string) bool {
	if f.err == nil {
		f.err = f.e.EncodeString(k)
	}
	return f.err == nil
}

func (f *fieldEncoder) str(k, v string) {
	if f.key(k) {
		f.err = f.e.EncodeString(v)
	}
}

func (f *fieldEncoder) bytes(k string, v []byte) {
	if f.key(k) {
		f.err = f.e.EncodeBytes(v)
	}
}

// int64 writes a fixed 9-byte int64, as msgpack writes an int64 field.
func (f *fieldEncoder) int64(k string, v int64) {
	if f.key(k) {
		f.err = f.e.EncodeInt64(v)
	}
}

// int writes the shortest form, as msgpack writes an int field.
func (f *fieldEncoder) int(k string, v int) {
	if f.key(k) {
		f.err = f.e.EncodeInt(int64(v))
	}
}

// uint64 writes a fixed 9-byte uint64, as msgpack writes a uint64 field.
func (f *fieldEncoder) uint64(k string, v uint64) {
	if f.key(k) {
		f.err = f.e.EncodeUint64(v)
	}
}

func (f *fieldEncoder) bool(k string, v bool) {
	if f.key(k) {
		f.err = f.e.EncodeBool(v)
	}
}

// count returns n plus one for each set among omitempty fields.
func count(n int, set ...bool) int {
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

func (m *InitializeRequest) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(7)
	f.int64("ping_interval_ns", int64(m.PingInterval))
	f.int64("ping_timeout_ns", int64(m.PingTimeout))
	f.int64("high_ping_threshold_ns", int64(m.HighPingThreshold))
	f.bool("debug", m.Debug)
	f.bytes("payload", m.Payload)
	f.int("max_frame", m.MaxFrame)
	f.bool("fragments", m.Fragments)
	return f.err
}

func (m *InitializeRequest) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "ping_interval_ns":
		return d.int64((*int64)(&m.PingInterval))
	case "ping_timeout_ns":
		return d.int64((*int64)(&m.PingTimeout))
	case "high_ping_threshold_ns":
		return d.int64((*int64)(&m.HighPingThreshold))
	case "debug":
		return d.bool(&m.Debug)
	case "payload":
		return d.bytes(&m.Payload)
	case "max_frame":
		return d.int(&m.MaxFrame)
	case "fragments":
		return d.bool(&m.Fragments)
	}
	return d.skip()
}

func (m *InitializeResponse) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(3)
	f.str("error", m.Error)
	f.int("max_frame", m.MaxFrame)
	f.bool("fragments", m.Fragments)
	return f.err
}

func (m *InitializeResponse) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "error":
		return d.str(&m.Error)
	case "max_frame":
		return d.int(&m.MaxFrame)
	case "fragments":
		return d.bool(&m.Fragments)
	}
	return d.skip()
}

func (m *PingRequest) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(1)
	f.int64("sent_at_ns", m.SentAt)
	return f.err
}

func (m *PingRequest) decodeField(d *fieldDecoder, key string) error {
	if key == "sent_at_ns" {
		return d.int64(&m.SentAt)
	}
	return d.skip()
}

func (m *PongResponse) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(2)
	f.int64("sent_at_ns", m.SentAt)
	f.int64("child_time_ns", m.ChildTime)
	return f.err
}

func (m *PongResponse) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "sent_at_ns":
		return d.int64(&m.SentAt)
	case "child_time_ns":
		return d.int64(&m.ChildTime)
	}
	return d.skip()
}

func (m *ShutdownRequest) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(1)
	f.str("reason", m.Reason)
	return f.err
}

func (m *ShutdownRequest) decodeField(d *fieldDecoder, key string) error {
	if key == "reason" {
		return d.str(&m.Reason)
	}
	return d.skip()
}

func (m *Exiting) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(count(2, m.Panic != ""))
	f.str("reason", m.Reason)
	f.uint64("log_records", m.LogRecords)
	if m.Panic != "" {
		f.str("panic", m.Panic)
	}
	return f.err
}

func (m *Exiting) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "reason":
		return d.str(&m.Reason)
	case "log_records":
		return d.uint64(&m.LogRecords)
	case "panic":
		return d.str(&m.Panic)
	}
	return d.skip()
}

func (m *Message) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(2)
	f.str("kind", m.Kind)
	f.bytes("body", m.Body)
	return f.err
}

func (m *Message) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "kind":
		return d.str(&m.Kind)
	case "body":
		return d.bytes(&m.Body)
	}
	return d.skip()
}

func (m *Request) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(3)
	f.uint64("id", m.ID)
	f.str("kind", m.Kind)
	f.bytes("body", m.Body)
	return f.err
}

func (m *Request) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "id":
		return d.uint64(&m.ID)
	case "kind":
		return d.str(&m.Kind)
	case "body":
		return d.bytes(&m.Body)
	}
	return d.skip()
}

func (m *Reply) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(count(3, m.Code != ""))
	f.uint64("id", m.ID)
	f.bytes("body", m.Body)
	f.str("error", m.Error)
	if m.Code != "" {
		f.str("code", m.Code)
	}
	return f.err
}

func (m *Reply) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "id":
		return d.uint64(&m.ID)
	case "body":
		return d.bytes(&m.Body)
	case "error":
		return d.str(&m.Error)
	case "code":
		return d.str(&m.Code)
	}
	return d.skip()
}

func (m *Fragment) encodeFields(e *msgpack.Encoder) error {
	f := fieldEncoder{e: e}
	f.begin(count(2, m.Size != 0))
	if m.Size != 0 {
		f.uint64("size", m.Size)
	}
	f.bool("more", m.More)
	f.bytes("part", m.Part)
	return f.err
}

func (m *Fragment) decodeField(d *fieldDecoder, key string) error {
	switch key {
	case "size":
		return d.uint64(&m.Size)
	case "more":
		return d.bool(&m.More)
	case "part":
		return d.bytes(&m.Part)
	}
	return d.skip()
}
