package wire

import (
	"errors"
	"io"
	"maps"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// This file is the msgpack the protocol uses, through github.com/vmihailenco/msgpack/v5's
// Encoder and Decoder and their primitive methods: no reflection. What is written here
// by hand is only what v5 has no call for: string and bytes payloads are sliced out of
// the frame (a key is compared, never copied; a large body aliases its frame), and a
// skipped value is walked without copying its payload (v5's Skip reads it into a
// buffer). The bytes are those v5's reflective encoder writes for the same Go values,
// and an input is read as v5 reads it, or refused (TestFieldCodecsMatchMsgpack, FuzzDecode).

// encoder writes msgpack into b, through v5's Encoder (made once per encoder).
type encoder struct {
	b   []byte
	enc *msgpack.Encoder
}

// The encoder is the Encoder's writer: it appends to b.
func (e *encoder) Write(p []byte) (int, error) { e.b = append(e.b, p...); return len(p), nil }
func (e *encoder) WriteByte(c byte) error      { e.b = append(e.b, c); return nil }
func (e *encoder) WriteString(s string) (int, error) {
	e.b = append(e.b, s...)
	return len(s), nil
}

// ready makes the v5 Encoder at the first use: an encoder's zero value is ready.
func (e *encoder) ready() *msgpack.Encoder {
	if e.enc == nil {
		e.enc = msgpack.NewEncoder(e)
	}
	return e.enc
}

// Writes into memory do not fail: the Encoder's errors are those of its writer.
func (e *encoder) mapLen(n int)   { e.ready().EncodeMapLen(n) }
func (e *encoder) arrayLen(n int) { e.ready().EncodeArrayLen(n) }
func (e *encoder) str(s string)   { e.ready().EncodeString(s) }
func (e *encoder) nil()           { e.ready().EncodeNil() }

// bin writes b as msgpack bin (nil as nil).
func (e *encoder) bin(b []byte) { e.ready().EncodeBytes(b) }
func (e *encoder) bool(v bool)  { e.ready().EncodeBool(v) }

// int64 and uint64 write the fixed 9-byte forms, as v5 writes int64 and uint64 fields.
func (e *encoder) int64(v int64)   { e.ready().EncodeInt64(v) }
func (e *encoder) uint64(v uint64) { e.ready().EncodeUint64(v) }

// int writes the shortest form of v, as v5 writes an int field.
func (e *encoder) int(v int64) { e.ready().EncodeInt(v) }

// value writes an attribute's value as v5 writes an interface field: each Go type in its
// own form (int64 in 9 bytes, int in the shortest), a map with its keys sorted. Types an
// attribute never holds are an error (its writer then sends the value's text).
func (e *encoder) value(v any) error {
	enc := e.ready()
	switch v := v.(type) {
	case nil:
		enc.EncodeNil()
	case bool:
		enc.EncodeBool(v)
	case string:
		enc.EncodeString(v)
	case []byte:
		enc.EncodeBytes(v)
	case int:
		enc.EncodeInt(int64(v))
	case int8:
		enc.EncodeInt8(v)
	case int16:
		enc.EncodeInt16(v)
	case int32:
		enc.EncodeInt32(v)
	case int64:
		enc.EncodeInt64(v)
	case uint:
		enc.EncodeUint(uint64(v))
	case uint8:
		enc.EncodeUint8(v)
	case uint16:
		enc.EncodeUint16(v)
	case uint32:
		enc.EncodeUint32(v)
	case uint64:
		enc.EncodeUint64(v)
	case float32:
		enc.EncodeFloat32(v)
	case float64:
		enc.EncodeFloat64(v)
	case []any: // as a non-Go child may send and the decoder reads it
		enc.EncodeArrayLen(len(v))
		for _, x := range v {
			if err := e.value(x); err != nil {
				return err
			}
		}
	case map[string]any:
		enc.EncodeMapLen(len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			enc.EncodeString(k)
			if err := e.value(v[k]); err != nil {
				return err
			}
		}
	default:
		return errors.New("an attribute value of type " + typeName(v))
	}
	return nil
}

// decoder reads msgpack from b, from pos on, through v5's Decoder (kept across frames),
// which reads b through the decoder itself: pos is always where the Decoder is. Every
// read is bounds-checked; a body that passed checkShape never runs out.
type decoder struct {
	b   []byte
	pos int
	dec *msgpack.Decoder
}

// reset points d at body, from its start.
func (d *decoder) reset(body []byte) {
	d.b, d.pos = body, 0
	if d.dec == nil {
		d.dec = msgpack.NewDecoder(d)
	}
}

// release lets go of the body.
func (d *decoder) release() { d.b, d.pos = nil, 0 }

// Read, ReadByte and UnreadByte are the Decoder's reader of b.
func (d *decoder) Read(p []byte) (int, error) {
	if d.pos >= len(d.b) {
		return 0, io.EOF
	}
	n := copy(p, d.b[d.pos:])
	d.pos += n
	return n, nil
}

func (d *decoder) ReadByte() (byte, error) {
	if d.pos >= len(d.b) {
		return 0, io.EOF
	}
	d.pos++
	return d.b[d.pos-1], nil
}

func (d *decoder) UnreadByte() error {
	if d.pos == 0 {
		return errors.New("msgpack: nothing to unread")
	}
	d.pos--
	return nil
}

func (d *decoder) peek() (byte, error) { return d.dec.PeekCode() }

// next returns the next n bytes, aliasing b.
func (d *decoder) next(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.pos {
		return nil, io.ErrUnexpectedEOF
	}
	p := d.b[d.pos : d.pos+n : d.pos+n]
	d.pos += n
	return p, nil
}

// mapLen reads a map header: -1 for nil.
func (d *decoder) mapLen() (int, error) { return d.dec.DecodeMapLen() }

// arrayLen reads an array header: -1 for nil.
func (d *decoder) arrayLen() (int, error) { return d.dec.DecodeArrayLen() }

// raw reads a string or bin (v5 reads either as either) and returns its bytes, aliasing
// b; nil is nil.
func (d *decoder) raw() ([]byte, error) {
	n, err := d.dec.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	return d.next(n)
}

// str reads a string (or bin; nil is "").
func (d *decoder) str() (string, error) {
	p, err := d.raw()
	return string(p), err
}

// int64 reads any integer (nil is 0), as v5's DecodeInt64.
func (d *decoder) int64() (int64, error) { return d.dec.DecodeInt64() }

// uint64 reads any integer (nil is 0), as v5's DecodeUint64: a negative one wraps.
func (d *decoder) uint64() (uint64, error) { return d.dec.DecodeUint64() }

// bool reads a boolean (nil is false).
func (d *decoder) bool() (bool, error) { return d.dec.DecodeBool() }

// value reads any value as v5's DecodeInterface does: int8 for a fixed number, each sized
// integer and float as its own Go type, bin as []byte, arrays as []any and maps as
// map[string]any. Extension types are not part of the protocol: an error.
func (d *decoder) value() (any, error) {
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		return d.mapValue()
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := d.arrayLen()
		if err != nil {
			return nil, err
		}
		s := make([]any, 0, max(n, 0))
		for range n {
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case msgpcode.IsString(c):
		return d.str()
	case msgpcode.IsBin(c):
		p, err := d.raw()
		return append(make([]byte, 0, len(p)), p...), err
	case msgpcode.IsExt(c):
		return nil, errors.New("msgpack code " + hexCode(c) + " (an extension) is not used by the protocol")
	}
	return d.dec.DecodeInterface()
}

// mapValue reads a map of any values with string keys.
func (d *decoder) mapValue() (map[string]any, error) {
	n, err := d.mapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]any, n)
	for range n {
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if m[k], err = d.value(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// skip passes over one value of any kind, without copying a payload.
func (d *decoder) skip() error {
	c, err := d.peek()
	if err != nil {
		return err
	}
	count := 0
	switch {
	case msgpcode.IsString(c), msgpcode.IsBin(c):
		_, err := d.raw()
		return err
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := d.mapLen()
		if err != nil {
			return err
		}
		count = 2 * n
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := d.arrayLen()
		if err != nil {
			return err
		}
		count = n
	default:
		return d.dec.Skip()
	}
	for range count {
		if err := d.skip(); err != nil {
			return err
		}
	}
	return nil
}

// errDuplicate reports a field given twice where the decoder would have to merge.
var errDuplicate = errors.New("a field given twice")
