package wire

import (
	"bytes"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// A large message's body is not copied out of its frame: the frame was read (or
// reassembled from fragments) into a buffer of its own, so its Body may point into it.
// That spares a copy of up to the frame cap, and the stall of touching fresh memory for
// it, on the goroutine that also reads the pongs.

// aliasAbove is the frame size above which Message, Request and Reply bodies alias their
// frame: above the frames a Reader reads into its reused buffer.
const aliasAbove = scratchMax

// decodeAliased decodes the fields of m (a *Message, *Request or *Reply, or f, a
// *Fragment) from dec, which reads br, a reader over frame; a body or part becomes a slice
// of frame (a Fragment's Part is copied out by the Reader before it reads again). It reads
// the fields as the general decoder does (by name, any order, unknown ones skipped, nil as
// zero), and reports false for any other message.
func decodeAliased(dec *msgpack.Decoder, br *bytes.Reader, frame []byte, m Wire, f *Fragment) (bool, error) {
	var body *[]byte
	var kind, errText, code *string
	var id, size *uint64
	var more *bool
	switch m := m.(type) {
	case *Fragment:
		body, size, more = &m.Part, &m.Size, &m.More
	case *Message:
		body, kind = &m.Body, &m.Kind
	case *Request:
		body, kind, id = &m.Body, &m.Kind, &m.ID
	case *Reply:
		body, errText, code, id = &m.Body, &m.Error, &m.Code, &m.ID
	default:
		return false, nil
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return true, err
	}
	for range max(n, 0) {
		key, err := dec.DecodeString()
		if err != nil {
			return true, err
		}
		switch {
		case key == "body" && f == nil, key == "part" && f != nil:
			l, err := dec.DecodeBytesLen()
			if err != nil {
				return true, err
			}
			if l < 0 {
				*body = nil
				continue
			}
			at := len(frame) - br.Len()
			*body = frame[at : at+l : at+l]
			if _, err := br.Seek(int64(l), io.SeekCurrent); err != nil {
				return true, err
			}
		case key == "kind" && kind != nil:
			*kind, err = dec.DecodeString()
		case key == "error" && errText != nil:
			*errText, err = dec.DecodeString()
		case key == "code" && code != nil:
			*code, err = dec.DecodeString()
		case key == "id" && id != nil:
			*id, err = dec.DecodeUint64()
		case key == "size" && size != nil:
			*size, err = dec.DecodeUint64()
		case key == "more" && more != nil:
			*more, err = dec.DecodeBool()
		default:
			err = dec.Skip()
		}
		if err != nil {
			return true, err
		}
	}
	return true, nil
}
