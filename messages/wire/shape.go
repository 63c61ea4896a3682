package wire

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// MaxDepth is how deeply arrays and maps may nest inside one frame body.
const MaxDepth = 32

var errTruncated = errors.New("msgpack value truncated")

// checkShape walks a msgpack body without allocating per element and rejects anything the
// decoder could turn into unbounded work: a container whose declared length is larger
// than the bytes left (each element takes at least one byte), nesting deeper than
// MaxDepth, the reserved code 0xc1, truncation, and trailing bytes after the one value.
// After it passes, every allocation the decoder makes is bounded by the body's length.
func checkShape(b []byte) error {
	pos := 0
	stack := make([]uint64, 1, 8)
	stack[0] = 1
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		if pos >= len(b) {
			return errTruncated
		}
		c := b[pos]
		pos++
		var skip, lenBytes int // fixed payload size, or size of a length field
		var count uint64       // elements of a container
		container := false
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			count, container = uint64(c&0x0f)*2, true
		case c >= 0x90 && c <= 0x9f:
			count, container = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			skip = int(c & 0x1f)
		case c == 0xc1:
			return errors.New("reserved msgpack code 0xc1 at offset " + strconv.Itoa(pos-1))
		case c == 0xc4, c == 0xd9:
			lenBytes = 1
		case c == 0xc5, c == 0xda:
			lenBytes = 2
		case c == 0xc6, c == 0xdb:
			lenBytes = 4
		case c == 0xc7:
			lenBytes, skip = 1, 1
		case c == 0xc8:
			lenBytes, skip = 2, 1
		case c == 0xc9:
			lenBytes, skip = 4, 1
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c == 0xcc, c == 0xd0:
			skip = 1
		case c == 0xcd, c == 0xd1:
			skip = 2
		case c == 0xce, c == 0xd2:
			skip = 4
		case c == 0xcf, c == 0xd3:
			skip = 8
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + (1 << (c - 0xd4))
		case c == 0xdc, c == 0xde:
			lenBytes, container = 2, true
		case c == 0xdd, c == 0xdf:
			lenBytes, container = 4, true
		}
		if lenBytes > 0 {
			if len(b)-pos < lenBytes {
				return errTruncated
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(b[pos])
			case 2:
				n = uint64(binary.BigEndian.Uint16(b[pos:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(b[pos:]))
			}
			pos += lenBytes
			if container {
				count = n
				if c == 0xde || c == 0xdf {
					count *= 2
				}
			} else if n > uint64(len(b)-pos) {
				return errTruncated
			} else {
				skip += int(n)
			}
		}
		if container {
			if count > uint64(len(b)-pos) {
				return errors.New("container of " + strconv.FormatUint(count, 10) + " elements in " + strconv.Itoa(len(b)-pos) + " remaining bytes")
			}
			if len(stack) > MaxDepth { // this container is at level len(stack), the body itself at 1
				return errors.New("nesting deeper than " + strconv.Itoa(MaxDepth))
			}
			if count > 0 {
				stack = append(stack, count)
			}
			continue
		}
		if skip > len(b)-pos {
			return errTruncated
		}
		pos += skip
	}
	if pos != len(b) {
		return errors.New(strconv.Itoa(len(b)-pos) + " trailing bytes after the message")
	}
	return nil
}
