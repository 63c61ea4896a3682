package wire

import (
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math"
	"slices"
)

// This file is the msgpack the protocol uses, written and read by hand: maps, arrays,
// strings, bytes, integers, floats, booleans and nil. No reflection and no library, so a
// child links this package and the standard library alone, starts as fast as a program
// that speaks raw bytes, and answers a request without an allocation it can avoid. The
// bytes are those github.com/vmihailenco/msgpack/v5 writes for the same Go values, and
// an input is read as that library reads it, or refused: the tests hold this code to
// that library, which stays the reference (TestFieldCodecsMatchMsgpack, FuzzDecode).

// The msgpack codes used here.
const (
	codeNil     = 0xc0
	codeFalse   = 0xc2
	codeTrue    = 0xc3
	codeBin8    = 0xc4
	codeBin16   = 0xc5
	codeBin32   = 0xc6
	codeFloat32 = 0xca
	codeFloat64 = 0xcb
	codeUint8   = 0xcc
	codeUint16  = 0xcd
	codeUint32  = 0xce
	codeUint64  = 0xcf
	codeInt8    = 0xd0
	codeInt16   = 0xd1
	codeInt32   = 0xd2
	codeInt64   = 0xd3
	codeStr8    = 0xd9
	codeStr16   = 0xda
	codeStr32   = 0xdb
	codeArray16 = 0xdc
	codeArray32 = 0xdd
	codeMap16   = 0xde
	codeMap32   = 0xdf
)

// encoder appends msgpack to b.
type encoder struct{ b []byte }

func (e *encoder) be16(c byte, v uint16) { e.b = append(e.b, c, byte(v>>8), byte(v)) }
func (e *encoder) be32(c byte, v uint32) { e.b = binary.BigEndian.AppendUint32(append(e.b, c), v) }
func (e *encoder) be64(c byte, v uint64) { e.b = binary.BigEndian.AppendUint64(append(e.b, c), v) }

// length writes a container or string header: fix (when n < fixMax), then 8 (when
// c8 is not 0), 16 or 32 bits.
func (e *encoder) length(n int, fix byte, fixMax int, c8, c16, c32 byte) {
	switch {
	case n < fixMax:
		e.b = append(e.b, fix|byte(n))
	case c8 != 0 && n <= math.MaxUint8:
		e.b = append(e.b, c8, byte(n))
	case n <= math.MaxUint16:
		e.be16(c16, uint16(n))
	default:
		e.be32(c32, uint32(n))
	}
}

func (e *encoder) mapLen(n int)   { e.length(n, 0x80, 16, 0, codeMap16, codeMap32) }
func (e *encoder) arrayLen(n int) { e.length(n, 0x90, 16, 0, codeArray16, codeArray32) }
func (e *encoder) nil()           { e.b = append(e.b, codeNil) }

func (e *encoder) str(s string) {
	e.length(len(s), 0xa0, 32, codeStr8, codeStr16, codeStr32)
	e.b = append(e.b, s...)
}

// bin writes b as msgpack bin (nil as nil; never a fix form, as msgpack writes it).
func (e *encoder) bin(b []byte) {
	if b == nil {
		e.nil()
		return
	}
	e.length(len(b), 0, 0, codeBin8, codeBin16, codeBin32)
	e.b = append(e.b, b...)
}

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, codeTrue)
	} else {
		e.b = append(e.b, codeFalse)
	}
}

// int64 and uint64 write the fixed 9-byte forms, as msgpack writes int64 and uint64 fields.
func (e *encoder) int64(v int64)   { e.be64(codeInt64, uint64(v)) }
func (e *encoder) uint64(v uint64) { e.be64(codeUint64, v) }

// uint writes the shortest form of v, as msgpack's EncodeUint.
func (e *encoder) uint(v uint64) {
	switch {
	case v <= math.MaxInt8:
		e.b = append(e.b, byte(v))
	case v <= math.MaxUint8:
		e.b = append(e.b, codeUint8, byte(v))
	case v <= math.MaxUint16:
		e.be16(codeUint16, uint16(v))
	case v <= math.MaxUint32:
		e.be32(codeUint32, uint32(v))
	default:
		e.uint64(v)
	}
}

// int writes the shortest form of v, as msgpack's EncodeInt (an int field).
func (e *encoder) int(v int64) {
	switch {
	case v >= 0:
		e.uint(uint64(v))
	case v >= -32:
		e.b = append(e.b, byte(v))
	case v >= math.MinInt8:
		e.b = append(e.b, codeInt8, byte(v))
	case v >= math.MinInt16:
		e.be16(codeInt16, uint16(v))
	case v >= math.MinInt32:
		e.be32(codeInt32, uint32(v))
	default:
		e.int64(v)
	}
}

// value writes an attribute's value as msgpack writes an interface field: each Go type
// in its own form (int64 in 9 bytes, int in the shortest), a map with its keys sorted.
// Types an attribute never holds are an error (its writer then sends the value's text).
func (e *encoder) value(v any) error {
	switch v := v.(type) {
	case nil:
		e.nil()
	case bool:
		e.bool(v)
	case string:
		e.str(v)
	case []byte:
		e.bin(v)
	case int:
		e.int(int64(v))
	case int8:
		e.b = append(e.b, codeInt8, byte(v))
	case int16:
		e.be16(codeInt16, uint16(v))
	case int32:
		e.be32(codeInt32, uint32(v))
	case int64:
		e.int64(v)
	case uint:
		e.uint(uint64(v))
	case uint8:
		e.b = append(e.b, codeUint8, v)
	case uint16:
		e.be16(codeUint16, v)
	case uint32:
		e.be32(codeUint32, v)
	case uint64:
		e.uint64(v)
	case float32:
		e.be32(codeFloat32, math.Float32bits(v))
	case float64:
		e.be64(codeFloat64, math.Float64bits(v))
	case []any: // as a non-Go child may send and the decoder reads it
		e.arrayLen(len(v))
		for _, x := range v {
			if err := e.value(x); err != nil {
				return err
			}
		}
	case map[string]any:
		e.mapLen(len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			e.str(k)
			if err := e.value(v[k]); err != nil {
				return err
			}
		}
	default:
		return errors.New("an attribute value of type " + typeName(v))
	}
	return nil
}

// decoder reads msgpack from b, from pos on. Every read is bounds-checked; a body that
// passed checkShape never runs out.
type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) code() (byte, error) {
	if d.pos >= len(d.b) {
		return 0, io.ErrUnexpectedEOF
	}
	c := d.b[d.pos]
	d.pos++
	return c, nil
}

func (d *decoder) peek() (byte, error) {
	if d.pos >= len(d.b) {
		return 0, io.ErrUnexpectedEOF
	}
	return d.b[d.pos], nil
}

// next returns the next n bytes, aliasing b.
func (d *decoder) next(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.pos {
		return nil, io.ErrUnexpectedEOF
	}
	p := d.b[d.pos : d.pos+n : d.pos+n]
	d.pos += n
	return p, nil
}

func (d *decoder) u8() (uint64, error) {
	p, err := d.next(1)
	if err != nil {
		return 0, err
	}
	return uint64(p[0]), nil
}

func (d *decoder) u16() (uint64, error) {
	p, err := d.next(2)
	if err != nil {
		return 0, err
	}
	return uint64(binary.BigEndian.Uint16(p)), nil
}

func (d *decoder) u32() (uint64, error) {
	p, err := d.next(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.BigEndian.Uint32(p)), nil
}

func (d *decoder) u64() (uint64, error) {
	p, err := d.next(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(p), nil
}

// mapLen reads a map header: -1 for nil.
func (d *decoder) mapLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	return d.containerLen(c, 0x80, codeMap16, codeMap32, "map")
}

// arrayLen reads an array header: -1 for nil.
func (d *decoder) arrayLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	return d.containerLen(c, 0x90, codeArray16, codeArray32, "array")
}

func (d *decoder) containerLen(c, fix, c16, c32 byte, what string) (int, error) {
	var n uint64
	var err error
	switch {
	case c == codeNil:
		return -1, nil
	case c&0xf0 == fix:
		return int(c & 0x0f), nil
	case c == c16:
		n, err = d.u16()
	case c == c32:
		n, err = d.u32()
	default:
		return 0, errors.New("msgpack code " + hexCode(c) + " where a " + what + " belongs")
	}
	return int(n), err
}

// bytesLen reads a string or bin header (msgpack reads either as either): -1 for nil.
func (d *decoder) bytesLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c == codeNil:
		return -1, nil
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), nil
	case c == codeStr8, c == codeBin8:
		n, err = d.u8()
	case c == codeStr16, c == codeBin16:
		n, err = d.u16()
	case c == codeStr32, c == codeBin32:
		n, err = d.u32()
	default:
		return 0, errors.New("msgpack code " + hexCode(c) + " where a string or bytes belong")
	}
	return int(n), err
}

// raw reads a string or bin and returns its bytes, aliasing b; nil is nil.
func (d *decoder) raw() ([]byte, error) {
	n, err := d.bytesLen()
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

// int64 reads any integer (nil is 0), as msgpack's DecodeInt64.
func (d *decoder) int64() (int64, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c == codeNil:
		return 0, nil
	case c <= 0x7f || c >= 0xe0:
		return int64(int8(c)), nil
	case c == codeUint8:
		n, err = d.u8()
	case c == codeInt8:
		n, err = d.u8()
		return int64(int8(n)), err
	case c == codeUint16:
		n, err = d.u16()
	case c == codeInt16:
		n, err = d.u16()
		return int64(int16(n)), err
	case c == codeUint32:
		n, err = d.u32()
	case c == codeInt32:
		n, err = d.u32()
		return int64(int32(n)), err
	case c == codeUint64, c == codeInt64:
		n, err = d.u64()
	default:
		return 0, errors.New("msgpack code " + hexCode(c) + " where an integer belongs")
	}
	return int64(n), err
}

// uint64 reads any integer (nil is 0), as msgpack's DecodeUint64: a negative one wraps.
func (d *decoder) uint64() (uint64, error) {
	n, err := d.int64()
	return uint64(n), err
}

// bool reads a boolean (nil is false).
func (d *decoder) bool() (bool, error) {
	c, err := d.code()
	if err != nil {
		return false, err
	}
	switch c {
	case codeNil, codeFalse:
		return false, nil
	case codeTrue:
		return true, nil
	}
	return false, errors.New("msgpack code " + hexCode(c) + " where a boolean belongs")
}

// value reads any value as msgpack's DecodeInterface does: int8 for a fixed number,
// each sized integer and float as its own Go type, bin as []byte, arrays as []any and
// maps as map[string]any. Extension types are not part of the protocol: an error.
func (d *decoder) value() (any, error) {
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c <= 0x7f || c >= 0xe0:
		d.pos++
		return int8(c), nil
	case c >= 0x80 && c <= 0x8f, c == codeMap16, c == codeMap32:
		return d.mapValue()
	case c >= 0x90 && c <= 0x9f, c == codeArray16, c == codeArray32:
		n, err := d.arrayLen()
		if err != nil {
			return nil, err
		}
		s := make([]any, 0, n)
		for range n {
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case c >= 0xa0 && c <= 0xbf, c == codeStr8, c == codeStr16, c == codeStr32:
		return d.str()
	case c == codeBin8, c == codeBin16, c == codeBin32:
		p, err := d.raw()
		return append(make([]byte, 0, len(p)), p...), err
	}
	d.pos++
	var n uint64
	switch c {
	case codeNil:
		return nil, nil
	case codeFalse:
		return false, nil
	case codeTrue:
		return true, nil
	case codeFloat32:
		n, err = d.u32()
		return math.Float32frombits(uint32(n)), err
	case codeFloat64:
		n, err = d.u64()
		return math.Float64frombits(n), err
	case codeUint8:
		n, err = d.u8()
		return uint8(n), err
	case codeUint16:
		n, err = d.u16()
		return uint16(n), err
	case codeUint32:
		n, err = d.u32()
		return uint32(n), err
	case codeUint64:
		return d.u64()
	case codeInt8:
		n, err = d.u8()
		return int8(n), err
	case codeInt16:
		n, err = d.u16()
		return int16(n), err
	case codeInt32:
		n, err = d.u32()
		return int32(n), err
	case codeInt64:
		n, err = d.u64()
		return int64(n), err
	}
	return nil, errors.New("msgpack code " + hexCode(c) + " is not used by the protocol")
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

// skip passes over one value of any kind.
func (d *decoder) skip() error {
	c, err := d.code()
	if err != nil {
		return err
	}
	var count uint64 // values inside a container
	var size int     // bytes of a payload
	switch {
	case c <= 0x7f || c >= 0xe0, c == codeNil, c == codeFalse, c == codeTrue:
	case c >= 0x80 && c <= 0x8f:
		count = 2 * uint64(c&0x0f)
	case c >= 0x90 && c <= 0x9f:
		count = uint64(c & 0x0f)
	case c >= 0xa0 && c <= 0xbf:
		size = int(c & 0x1f)
	case c == codeBin8, c == codeStr8:
		n, err := d.u8()
		size = int(n)
		if err != nil {
			return err
		}
	case c == codeBin16, c == codeStr16:
		n, err := d.u16()
		size = int(n)
		if err != nil {
			return err
		}
	case c == codeBin32, c == codeStr32:
		n, err := d.u32()
		size = int(n)
		if err != nil {
			return err
		}
	case c == codeUint8, c == codeInt8:
		size = 1
	case c == codeUint16, c == codeInt16:
		size = 2
	case c == codeUint32, c == codeInt32, c == codeFloat32:
		size = 4
	case c == codeUint64, c == codeInt64, c == codeFloat64:
		size = 8
	case c == 0xd4, c == 0xd5, c == 0xd6, c == 0xd7, c == 0xd8: // fixext 1, 2, 4, 8, 16
		size = 1 + 1<<(c-0xd4)
	case c == 0xc7, c == 0xc8, c == 0xc9: // ext 8, 16, 32
		var n uint64
		switch c {
		case 0xc7:
			n, err = d.u8()
		case 0xc8:
			n, err = d.u16()
		default:
			n, err = d.u32()
		}
		if err != nil {
			return err
		}
		size = 1 + int(n)
	case c == codeArray16, c == codeMap16:
		n, err := d.u16()
		if err != nil {
			return err
		}
		count = n
		if c == codeMap16 {
			count *= 2
		}
	case c == codeArray32, c == codeMap32:
		n, err := d.u32()
		if err != nil {
			return err
		}
		count = n
		if c == codeMap32 {
			count *= 2
		}
	default:
		return errors.New("msgpack code " + hexCode(c))
	}
	if _, err := d.next(size); err != nil {
		return err
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
