package wire

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the frame reader. Whatever the input, reading must
// end in a typed error or a message, never a panic, and must not allocate more than the
// frame cap plus a small multiple of the input's length.
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
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(maxFrame+64*len(data)+64<<10); got > limit {
			t.Fatalf("reading %d bytes allocated %d bytes (limit %d)", len(data), got, limit)
		}
	})
}
