package wire

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecode feeds arbitrary bytes to the frame reader. Whatever the input, reading must
// end in a typed error or a message, never a panic, and must not allocate more than the
// frame cap plus a small multiple of the input's length. A message the field decoders
// read must be read the same by msgpack's reflective decoder.
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 6, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0})
	const maxFrame = 64 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewReader(bytes.NewReader(data), maxFrame)
		for {
			_, err := r.Read()
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrFrameTooLarge) {
				break
			}
		}
		if len(data) > 4 {
			if m, err := Decode(data[4:]); err == nil {
				checkReflective(t, data[4:], m)
			}
		}
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(maxFrame+64*len(data)+64<<10); got > limit {
			t.Fatalf("reading %d bytes allocated %d bytes (limit %d)", len(data), got, limit)
		}
	})
}

// checkReflective fails t when msgpack's reflective decoder reads body otherwise than
// the field decoders read it as m.
func checkReflective(t *testing.T, body []byte, m Wire) {
	t.Helper()
	want, err, ok := reflectiveDecode(body)
	if !ok || reflect.TypeOf(want) != reflect.TypeOf(m) {
		return
	}
	if err != nil {
		t.Fatalf("the field decoder read % x as %+v; msgpack fails: %v", body, m, err)
	}
	if !reflect.DeepEqual(want, m) && !sameMsgpack(want, m) {
		t.Fatalf("the field decoder read % x as %+v; msgpack reads %+v", body, m, want)
	}
}

// sameMsgpack reports whether msgpack encodes a and b to the same bytes: the same values
// where reflect.DeepEqual cannot tell, a NaN (never equal to itself) among them.
func sameMsgpack(a, b any) bool {
	ea, errA := msgpack.Marshal(a)
	eb, errB := msgpack.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ea, eb)
}
