package wire

import (
	"bytes"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// fieldSamples are values of every field-coded message, with the edges of each field:
// zero, negative, the largest, nil and empty bytes, omitempty fields set and unset.
func fieldSamples() []fieldCodec {
	return []fieldCodec{
		&InitializeRequest{},
		&InitializeRequest{PingInterval: -1, PingTimeout: math.MaxInt64, HighPingThreshold: time.Millisecond,
			Debug: true, Payload: []byte{}, MaxFrame: -5, Fragments: true},
		&InitializeRequest{Payload: bytes.Repeat([]byte{7}, 300), MaxFrame: math.MaxInt64},
		&InitializeResponse{}, &InitializeResponse{Error: "no model", MaxFrame: 70000, Fragments: true},
		&PingRequest{}, &PingRequest{SentAt: math.MinInt64},
		&PongResponse{SentAt: 1, ChildTime: -1},
		&ShutdownRequest{}, &ShutdownRequest{Reason: string(bytes.Repeat([]byte{'r'}, 70000))},
		&Exiting{}, &Exiting{Reason: "x", LogRecords: math.MaxUint64, Panic: "boom"},
		&Message{}, &Message{Kind: "k", Body: []byte{}}, &Message{Body: bytes.Repeat([]byte{1}, 70000)},
		&Request{}, &Request{ID: math.MaxUint64, Kind: "echo", Body: []byte("hi")},
		&Reply{}, &Reply{ID: 3, Body: []byte("x"), Error: "e", Code: CodePanic},
		&Fragment{}, &Fragment{Size: 1 << 40, More: true, Part: []byte{0xc1}},
		&LogRecord{}, &LogRecord{Attrs: []Attr{}},
		&LogRecord{Time: -1, Level: -4, Message: "m", Logger: "l", Dropped: 3, Seq: math.MaxUint64,
			Source: &Source{Function: "f", File: "x.go", Line: 1 << 20},
			Attrs: []Attr{
				{Key: "s", Kind: "string", Value: "v"}, {Key: "i", Kind: "int", Value: int64(-7)},
				{Key: "u", Kind: "uint", Value: uint64(1 << 63)}, {Key: "f", Kind: "float", Value: 2.5},
				{Key: "b", Kind: "bool", Value: true}, {Key: "n", Kind: "any"},
				{Key: "g", Kind: "group", Group: []Attr{{Key: "in", Kind: "int", Value: int64(1)}}},
				{Key: "e", Kind: "group", Group: []Attr{}},
			}},
	}
}

// TestFieldCodecsMatchMsgpack checks the field-by-field codecs against msgpack's
// reflective one: the same bytes out, and the same values read back from msgpack's bytes.
func TestFieldCodecsMatchMsgpack(t *testing.T) {
	for _, m := range fieldSamples() {
		want, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		f := &fieldEncoder{}
		m.encodeFields(f)
		if !bytes.Equal(f.b, want) {
			t.Errorf("%T %+.40v: encoded\n% x\nmsgpack writes\n% x", m, m, f.b, want)
		}
		frame, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(frame[4:])
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(m).Elem()).Interface()
		if err := msgpack.Unmarshal(want, back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, back) {
			t.Errorf("%T: decoded %+.40v, msgpack reads %+.40v", m, got, back)
		}
	}
}

// TestFieldDecodersReadWhatMsgpackReads gives the field decoders what another encoder
// may write: fields out of order, unknown fields, compact integers, str for bytes,
// nil for every field and for the whole map.
func TestFieldDecodersReadWhatMsgpackReads(t *testing.T) {
	bodies := []map[string]any{
		{"max_frame": int8(5), "unknown": []any{1, "x"}, "ping_timeout_ns": uint16(9), "payload": "as str", "debug": nil},
		{"id": int8(4), "body": nil, "kind": nil, "error": "e", "code": nil},
		{"sent_at_ns": uint8(200), "child_time_ns": -3},
		{"part": "p", "size": 2, "more": true},
		{"log_records": 7, "reason": nil},
	}
	for _, fields := range bodies {
		data, err := msgpack.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range fieldSamples() {
			typ := reflect.TypeOf(m).Elem()
			want := reflect.New(typ).Interface()
			wantErr := msgpack.Unmarshal(data, want)
			frame, _ := msgpack.Marshal(map[string]any{"type": string(m.WireType()), "data": msgpack.RawMessage(data)})
			got, err := Decode(frame)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("%v as %s: error %v, msgpack's %v", fields, m.WireType(), err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("%v as %s: decoded %+v, msgpack reads %+v", fields, m.WireType(), got, want)
			}
		}
	}
}

// envelope is a frame body as msgpack's reflective decoder reads it.
type envelope struct {
	Type Type               `msgpack:"type"`
	Data msgpack.RawMessage `msgpack:"data"`
}

// reflectiveDecode decodes a frame body as msgpack's reflective decoder does, for
// FuzzDecode to compare with the field decoders; ok is false when it cannot.
func reflectiveDecode(body []byte) (m Wire, err error, ok bool) {
	var env envelope
	if msgpack.Unmarshal(body, &env) != nil || env.Type == "" {
		return nil, nil, false
	}
	m, _ = newWire([]byte(env.Type))
	if m == nil {
		return nil, nil, false
	}
	if len(env.Data) == 0 {
		return m, nil, true // no data: the zero message, as Decode reads it
	}
	return m, msgpack.Unmarshal(env.Data, m), true
}
