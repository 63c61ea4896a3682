package wire

import "github.com/vmihailenco/msgpack/v5/msgpcode"

// Every message is encoded and decoded field by field (codec.go has the msgpack): the
// bytes are those msgpack's reflective encoder writes for the same struct (fields in
// order, omitempty ones left out when empty), and the decoder reads what it reads (by
// name, in any order, unknown fields skipped, nil as zero):
// TestFieldCodecsMatchMsgpack and FuzzDecode check both.

// A large message's body is not copied out of its frame: the frame was read (or
// reassembled from fragments) into a buffer of its own, so its Body may point into it.
// That spares a copy of up to the frame cap, and the stall of touching fresh memory for
// it, on the goroutine that also reads the pongs.

// aliasAbove is the frame size above which Message, Request and Reply bodies alias their
// frame: above the frames a Reader reads into its reused buffer.
const aliasAbove = scratchMax

// fieldCodec is a message encoded and decoded field by field: every wire message.
type fieldCodec interface {
	Wire
	fields
	// encodeFields writes the message's map: its length, then each key and value.
	encodeFields(e *fieldEncoder)
}

// fields is a map read field by field: a message, or a part of one (Attr, Source).
type fields interface {
	// decodeField reads the value of key from d. key aliases the frame: it is compared,
	// never kept (a string made of it would be allocated for each field of each frame).
	decodeField(d *fieldDecoder, key []byte) error
}

// fieldDecoder reads field values from a frame body. A bytes field aliases the frame
// when alias is set (the frame is a buffer of its own), and is copied out otherwise.
type fieldDecoder struct {
	decoder
	alias bool
}

// decodeFields reads m's map from d: a nil leaves m zero.
func decodeFields(d *fieldDecoder, m fields) error {
	n, err := d.mapLen()
	if err != nil {
		return err
	}
	for range max(n, 0) {
		key, err := d.raw()
		if err != nil {
			return err
		}
		if err := m.decodeField(d, key); err != nil {
			return err
		}
	}
	return nil
}

func (d *fieldDecoder) bytes(p *[]byte) error {
	b, err := d.raw()
	switch {
	case err != nil || b == nil:
		*p = nil
	case d.alias:
		*p = b
	default:
		*p = append(make([]byte, 0, len(b)), b...)
	}
	return err
}

func (d *fieldDecoder) string(p *string) (err error) {
	*p, err = d.str()
	return err
}

func (d *fieldDecoder) int64Field(p *int64) (err error) {
	*p, err = d.int64()
	return err
}

func (d *fieldDecoder) intField(p *int) error {
	n, err := d.int64()
	*p = int(n)
	return err
}

func (d *fieldDecoder) uint64Field(p *uint64) (err error) {
	*p, err = d.uint64()
	return err
}

func (d *fieldDecoder) boolField(p *bool) (err error) {
	*p, err = d.bool()
	return err
}

// fieldEncoder writes a map's keys and values: the encoders below read as the list of
// their fields.
type fieldEncoder struct{ encoder }

func (f *fieldEncoder) begin(n int)                    { f.mapLen(n) }
func (f *fieldEncoder) strField(k, v string)           { f.str(k); f.str(v) }
func (f *fieldEncoder) bytesField(k string, v []byte)  { f.str(k); f.bin(v) }
func (f *fieldEncoder) int64Field(k string, v int64)   { f.str(k); f.int64(v) }
func (f *fieldEncoder) intField(k string, v int)       { f.str(k); f.int(int64(v)) }
func (f *fieldEncoder) uint64Field(k string, v uint64) { f.str(k); f.uint64(v) }
func (f *fieldEncoder) boolField(k string, v bool)     { f.str(k); f.bool(v) }

// count returns n plus one for each set among omitempty fields.
func count(n int, set ...bool) int {
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

func (m *InitializeRequest) encodeFields(f *fieldEncoder) {
	f.begin(7)
	f.int64Field("ping_interval_ns", int64(m.PingInterval))
	f.int64Field("ping_timeout_ns", int64(m.PingTimeout))
	f.int64Field("high_ping_threshold_ns", int64(m.HighPingThreshold))
	f.boolField("debug", m.Debug)
	f.bytesField("payload", m.Payload)
	f.intField("max_frame", m.MaxFrame)
	f.boolField("fragments", m.Fragments)
}

func (m *InitializeRequest) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "ping_interval_ns":
		return d.int64Field((*int64)(&m.PingInterval))
	case "ping_timeout_ns":
		return d.int64Field((*int64)(&m.PingTimeout))
	case "high_ping_threshold_ns":
		return d.int64Field((*int64)(&m.HighPingThreshold))
	case "debug":
		return d.boolField(&m.Debug)
	case "payload":
		return d.bytes(&m.Payload)
	case "max_frame":
		return d.intField(&m.MaxFrame)
	case "fragments":
		return d.boolField(&m.Fragments)
	}
	return d.skip()
}

func (m *InitializeResponse) encodeFields(f *fieldEncoder) {
	f.begin(3)
	f.strField("error", m.Error)
	f.intField("max_frame", m.MaxFrame)
	f.boolField("fragments", m.Fragments)
}

func (m *InitializeResponse) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "error":
		return d.string(&m.Error)
	case "max_frame":
		return d.intField(&m.MaxFrame)
	case "fragments":
		return d.boolField(&m.Fragments)
	}
	return d.skip()
}

func (m *PingRequest) encodeFields(f *fieldEncoder) {
	f.begin(1)
	f.int64Field("sent_at_ns", m.SentAt)
}

func (m *PingRequest) decodeField(d *fieldDecoder, key []byte) error {
	if string(key) == "sent_at_ns" {
		return d.int64Field(&m.SentAt)
	}
	return d.skip()
}

func (m *PongResponse) encodeFields(f *fieldEncoder) {
	f.begin(2)
	f.int64Field("sent_at_ns", m.SentAt)
	f.int64Field("child_time_ns", m.ChildTime)
}

func (m *PongResponse) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "sent_at_ns":
		return d.int64Field(&m.SentAt)
	case "child_time_ns":
		return d.int64Field(&m.ChildTime)
	}
	return d.skip()
}

func (m *ShutdownRequest) encodeFields(f *fieldEncoder) {
	f.begin(1)
	f.strField("reason", m.Reason)
}

func (m *ShutdownRequest) decodeField(d *fieldDecoder, key []byte) error {
	if string(key) == "reason" {
		return d.string(&m.Reason)
	}
	return d.skip()
}

func (m *Exiting) encodeFields(f *fieldEncoder) {
	f.begin(count(2, m.Panic != ""))
	f.strField("reason", m.Reason)
	f.uint64Field("log_records", m.LogRecords)
	if m.Panic != "" {
		f.strField("panic", m.Panic)
	}
}

func (m *Exiting) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "reason":
		return d.string(&m.Reason)
	case "log_records":
		return d.uint64Field(&m.LogRecords)
	case "panic":
		return d.string(&m.Panic)
	}
	return d.skip()
}

func (m *Message) encodeFields(f *fieldEncoder) {
	f.begin(2)
	f.strField("kind", m.Kind)
	f.bytesField("body", m.Body)
}

func (m *Message) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "kind":
		return d.string(&m.Kind)
	case "body":
		return d.bytes(&m.Body)
	}
	return d.skip()
}

func (m *Request) encodeFields(f *fieldEncoder) {
	f.begin(3)
	f.uint64Field("id", m.ID)
	f.strField("kind", m.Kind)
	f.bytesField("body", m.Body)
}

func (m *Request) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "id":
		return d.uint64Field(&m.ID)
	case "kind":
		return d.string(&m.Kind)
	case "body":
		return d.bytes(&m.Body)
	}
	return d.skip()
}

func (m *Reply) encodeFields(f *fieldEncoder) {
	f.begin(count(3, m.Code != ""))
	f.uint64Field("id", m.ID)
	f.bytesField("body", m.Body)
	f.strField("error", m.Error)
	if m.Code != "" {
		f.strField("code", m.Code)
	}
}

func (m *Reply) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "id":
		return d.uint64Field(&m.ID)
	case "body":
		return d.bytes(&m.Body)
	case "error":
		return d.string(&m.Error)
	case "code":
		return d.string(&m.Code)
	}
	return d.skip()
}

func (m *Fragment) encodeFields(f *fieldEncoder) {
	f.begin(count(2, m.Size != 0))
	if m.Size != 0 {
		f.uint64Field("size", m.Size)
	}
	f.boolField("more", m.More)
	f.bytesField("part", m.Part)
}

func (m *Fragment) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "size":
		return d.uint64Field(&m.Size)
	case "more":
		return d.boolField(&m.More)
	case "part":
		return d.bytes(&m.Part)
	}
	return d.skip()
}

func (m *LogRecord) encodeFields(f *fieldEncoder) {
	f.begin(count(5, m.Source != nil, m.Dropped != 0, m.Seq != 0))
	f.int64Field("time_ns", m.Time)
	f.intField("level", m.Level)
	f.strField("message", m.Message)
	f.strField("logger", m.Logger)
	f.str("attrs")
	f.attrs(m.Attrs)
	if m.Source != nil {
		f.str("source")
		f.begin(3)
		f.strField("function", m.Source.Function)
		f.strField("file", m.Source.File)
		f.intField("line", m.Source.Line)
	}
	if m.Dropped != 0 {
		f.uint64Field("dropped", m.Dropped)
	}
	if m.Seq != 0 {
		f.uint64Field("seq", m.Seq)
	}
}

// attrs writes a list of attributes (nil as nil).
func (f *fieldEncoder) attrs(as []Attr) {
	if as == nil {
		f.nil()
		return
	}
	f.arrayLen(len(as))
	for _, a := range as {
		f.begin(count(3, len(a.Group) > 0))
		f.strField("key", a.Key)
		f.strField("kind", a.Kind)
		f.str("value")
		if err := f.value(a.Value); err != nil {
			f.str(typeName(a.Value)) // an attribute built by hand with another type: its type
		}
		if len(a.Group) > 0 {
			f.str("group")
			f.attrs(a.Group)
		}
	}
}

func (m *LogRecord) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "time_ns":
		return d.int64Field(&m.Time)
	case "level":
		return d.intField(&m.Level)
	case "message":
		return d.string(&m.Message)
	case "logger":
		return d.string(&m.Logger)
	case "attrs":
		if m.Attrs != nil {
			return errDuplicate
		}
		return d.attrs(&m.Attrs)
	case "source":
		if m.Source != nil {
			return errDuplicate
		}
		if c, err := d.peek(); err != nil || c == msgpcode.Nil {
			if err == nil {
				err = d.dec.DecodeNil()
			}
			return err
		}
		m.Source = &Source{}
		return decodeFields(d, m.Source)
	case "dropped":
		return d.uint64Field(&m.Dropped)
	case "seq":
		return d.uint64Field(&m.Seq)
	}
	return d.skip()
}

// attrs reads a list of attributes: nil as nil, an empty list as an empty slice.
func (d *fieldDecoder) attrs(p *[]Attr) error {
	n, err := d.arrayLen()
	if err != nil || n < 0 {
		return err
	}
	as := make([]Attr, n)
	for i := range as {
		if err := decodeFields(d, &as[i]); err != nil {
			return err
		}
	}
	*p = as
	return nil
}

func (a *Attr) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "key":
		return d.string(&a.Key)
	case "kind":
		return d.string(&a.Kind)
	case "value":
		if a.Value != nil {
			return errDuplicate
		}
		v, err := d.value()
		a.Value = v
		return err
	case "group":
		if a.Group != nil {
			return errDuplicate
		}
		return d.attrs(&a.Group)
	}
	return d.skip()
}

func (s *Source) decodeField(d *fieldDecoder, key []byte) error {
	switch string(key) {
	case "function":
		return d.string(&s.Function)
	case "file":
		return d.string(&s.File)
	case "line":
		return d.intField(&s.Line)
	}
	return d.skip()
}
