package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"maps"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.txt")

// samples holds one message of every type, with every field set.
func samples() map[string]Wire {
	return map[string]Wire{
		"initialize_request": &InitializeRequest{PingInterval: 2500 * time.Millisecond, PingTimeout: time.Minute,
			HighPingThreshold: 500 * time.Millisecond, Debug: true, Payload: []byte("cfg"), MaxFrame: 16 << 20, Fragments: true},
		"initialize_response":     &InitializeResponse{MaxFrame: 1 << 20, Fragments: true},
		"fragment_first":          &Fragment{Size: 5, More: true, Part: []byte{0x82, 0xa4}},
		"fragment_last":           &Fragment{Part: []byte{0x74, 0x79, 0x70}},
		"initialize_response_err": &InitializeResponse{Error: "no model"},
		"ping_request":            &PingRequest{SentAt: 1234567890},
		"pong_response":           &PongResponse{SentAt: 1234567890, ChildTime: 1700000000000000000},
		"shutdown_request":        &ShutdownRequest{Reason: "closed on request"},
		"exiting":                 &Exiting{Reason: "shutdown", LogRecords: 12},
		"exiting_panic":           &Exiting{Reason: "panic: boom", LogRecords: 3, Panic: "boom\n\ngoroutine 1 [running]:\nmain.main()"},
		"log_record": &LogRecord{Time: 1700000000000000000, Level: 4, Message: "hot", Logger: "worker",
			Attrs:  []Attr{{Key: "n", Kind: "int", Value: int64(3)}, {Key: "g", Kind: "group", Group: []Attr{{Key: "ok", Kind: "bool", Value: true}}}},
			Source: &Source{Function: "main.run", File: "main.go", Line: 42}, Dropped: 7, Seq: 20},
		// Zero values travel as themselves, never omitted.
		"log_record_zero_values": &LogRecord{Time: 1700000000000000000, Message: "zeros", Seq: 1,
			Attrs: []Attr{{Key: "n", Kind: "int", Value: int64(0)}, {Key: "ok", Kind: "bool", Value: false},
				{Key: "s", Kind: "string", Value: ""}, {Key: "d", Kind: "duration", Value: int64(0)},
				{Key: "f", Kind: "float", Value: float64(0)}}},
		"message":     &Message{Kind: "progress", Body: []byte{0x01, 0x02}},
		"request":     &Request{ID: 9, Kind: "echo", Body: []byte("hi")},
		"reply":       &Reply{ID: 9, Body: []byte("hi")},
		"reply_error": &Reply{ID: 10, Error: "boom"},
	}
}

func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "sock")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := conn(fds[0]), conn(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// normalize makes decoded values comparable with the samples: msgpack decodes small
// integers in `any` to their smallest type.
func normalize(m Wire) Wire {
	if r, ok := m.(*LogRecord); ok {
		var fix func([]Attr)
		fix = func(as []Attr) {
			for i := range as {
				switch v := as[i].Value.(type) {
				case int8:
					as[i].Value = int64(v)
				case int16:
					as[i].Value = int64(v)
				case int32:
					as[i].Value = int64(v)
				}
				fix(as[i].Group)
			}
		}
		fix(r.Attrs)
	}
	return m
}

func TestRoundTripOverSocket(t *testing.T) {
	a, b := socketPair(t)
	w := NewWriter(a, 0)
	r := NewReader(b, 0)
	for name, m := range samples() {
		if _, ok := m.(*Fragment); ok {
			continue // a Reader reassembles fragments: TestFragments* cover them
		}
		go func() {
			if err := w.Write(m); err != nil {
				t.Errorf("%s: write: %v", name, err)
			}
		}()
		got, err := r.Read()
		if err != nil {
			t.Fatalf("%s: read: %v", name, err)
		}
		if !reflect.DeepEqual(normalize(got), m) {
			t.Errorf("%s: got %#v, want %#v", name, got, m)
		}
	}
	a.Close()
	if _, err := r.Read(); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
}

func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	a, b := socketPair(t)
	w := NewWriter(a, 0)
	const writers, each = 8, 200
	big := bytes.Repeat([]byte{'x'}, 10<<10)
	for i := range writers {
		go func() {
			for j := range each {
				if err := w.Write(&Request{ID: uint64(i*each + j), Body: big}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	r := NewReader(b, 0)
	seen := map[uint64]bool{}
	for range writers * each {
		m, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		req := m.(*Request)
		if seen[req.ID] || !bytes.Equal(req.Body, big) {
			t.Fatalf("frame %d duplicated or corrupted", req.ID)
		}
		seen[req.ID] = true
	}
}

func frame(body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(out, body...)
}

func body(t testing.TB, v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadFrames(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 1000)
	deep = append(deep, 0xc0)
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"oversized", binary.BigEndian.AppendUint32(nil, 1<<20+1), ErrFrameTooLarge},
		{"huge length prefix", []byte{0xff, 0xff, 0xff, 0xff, 1, 2}, ErrFrameTooLarge},
		{"truncated header", []byte{0, 0}, ErrMalformed},
		{"truncated body", []byte{0, 0, 0, 10, 0x82}, ErrMalformed},
		{"empty body", frame(nil), ErrMalformed},
		{"not msgpack", frame([]byte{0xc1, 0xc1}), ErrMalformed},
		{"not a map", frame(body(t, []int{1, 2})), ErrMalformed},
		{"no type", frame(body(t, map[string]any{"data": map[string]any{}})), ErrMalformed},
		{"unknown type", frame(body(t, map[string]any{"type": "teleport", "data": map[string]any{}})), ErrUnknownType},
		{"wrong field type", frame(body(t, map[string]any{"type": "ping_request", "data": map[string]any{"sent_at_ns": "soon"}})), ErrMalformed},
		{"array claims 4G elements", frame([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}), ErrMalformed},
		{"string claims 4 GB", frame([]byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}), ErrMalformed},
		{"nesting too deep", frame(deep), ErrMalformed},
		{"trailing bytes", frame(append(body(t, envelope{Type: TypeExiting}), 0xc0)), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(c.input), 1<<20).Read()
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var tooLarge *FrameTooLargeError
			var unknown *UnknownTypeError
			var decode *DecodeError
			switch c.want {
			case ErrFrameTooLarge:
				if !errors.As(err, &tooLarge) || tooLarge.Max != 1<<20 {
					t.Fatalf("not a FrameTooLargeError with Max: %#v", err)
				}
			case ErrUnknownType:
				if !errors.As(err, &unknown) || unknown.Type != "teleport" {
					t.Fatalf("not an UnknownTypeError naming the type: %#v", err)
				}
			case ErrMalformed:
				if !errors.As(err, &decode) || decode.Err == nil {
					t.Fatalf("not a DecodeError with a cause: %#v", err)
				}
			}
		})
	}
}

func TestTruncatedBodyWrapsUnexpectedEOF(t *testing.T) {
	_, err := NewReader(bytes.NewReader([]byte{0, 0, 0, 10, 0x82}), 0).Read()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF inside", err)
	}
}

func TestUnknownTypeLeavesStreamUsable(t *testing.T) {
	var in bytes.Buffer
	in.Write(frame(body(t, map[string]any{"type": "future_thing", "data": map[string]any{"x": 1}})))
	good, _ := Encode(&PingRequest{SentAt: 5})
	in.Write(good)
	r := NewReader(&in, 0)
	if _, err := r.Read(); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("first: %v", err)
	}
	m, err := r.Read()
	if err != nil || m.(*PingRequest).SentAt != 5 {
		t.Fatalf("second: %v %v", m, err)
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	data := body(t, map[string]any{"sent_at_ns": 7, "added_later": []int{1}})
	m, err := Decode(body(t, map[string]any{"type": "ping_request", "data": msgpack.RawMessage(data)}))
	if err != nil || m.(*PingRequest).SentAt != 7 {
		t.Fatalf("%v %v", m, err)
	}
}

func TestWriterRefusesOversized(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, 1024)
	err := w.Write(&Message{Body: make([]byte, 2048)})
	if !errors.Is(err, ErrFrameTooLarge) || out.Len() != 0 {
		t.Fatalf("got %v with %d bytes written", err, out.Len())
	}
}

// TestVectors checks testdata/vectors.txt: each line is `name hex meaning`, where hex is a
// whole frame and meaning is the body as JSON (bytes in base64). Other implementations of
// the protocol can test against the same file. Run with -update to rewrite it.
func TestVectors(t *testing.T) {
	path := "testdata/vectors.txt"
	if *update {
		var out strings.Builder
		out.WriteString("# procsup wire protocol test vectors: name<TAB>frame in hex<TAB>body as JSON ([]byte fields in base64)\n")
		for _, name := range slices.Sorted(maps.Keys(samples())) {
			b, err := Encode(samples()[name])
			if err != nil {
				t.Fatal(err)
			}
			var meaning any
			if err := msgpack.Unmarshal(b[4:], &meaning); err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(meaning)
			out.WriteString(name + "\t" + hex.EncodeToString(b) + "\t" + string(js) + "\n")
		}
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := readTable(t, path, func(name string, raw []byte, _ string) {
		want, ok := samples()[name]
		if !ok {
			t.Fatalf("vector %q has no sample", name)
		}
		got, err := Decode(raw[4:]) // one frame each: a Reader would reassemble fragments
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(normalize(got), want) {
			t.Errorf("%s: decoded %#v, want %#v", name, got, want)
		}
		if enc, _ := Encode(want); !bytes.Equal(enc, raw) {
			t.Errorf("%s: encodes to %x, vector says %x", name, enc, raw)
		}
	})
	if n != len(samples()) {
		t.Fatalf("%d vectors for %d samples: run go test -run TestVectors -update", n, len(samples()))
	}
}

// readTable calls row with each line of a test table (name, a frame in hex, and the rest
// of the line), skipping comments, and returns how many rows there were.
func readTable(t *testing.T, path string, row func(name string, frame []byte, rest string)) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("bad line %q", line)
		}
		frame, err := hex.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		row(parts[0], frame, parts[2])
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// A large message goes out in fragments when the receiver reads them; the small frames
// written meanwhile go between its parts, and the reader returns them as they come, then
// the whole message.
func TestFragmentsInterleaveWithSmallFrames(t *testing.T) {
	a, b := socketPair(t)
	w := NewWriter(a, 0)
	w.SetFragments(true)
	body := make([]byte, 48*FragmentSize+17)
	for i := range body {
		body[i] = byte(i)
	}
	done := make(chan error, 1)
	go func() { done <- w.Write(&Request{ID: 1, Kind: "big", Body: body}) }()
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() { // pings, for as long as the request is on its way
		defer close(pinged)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.Write(&PingRequest{SentAt: i})
		}
	}()
	r := NewReader(b, 0)
	pings := 0
	for {
		m, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*PingRequest); ok {
			pings++
			continue
		}
		q, ok := m.(*Request)
		if !ok || !bytes.Equal(q.Body, body) || q.Kind != "big" {
			t.Fatalf("read a %T, want the whole request", m)
		}
		break
	}
	close(stop)
	go func() { // take what the pinger wrote meanwhile, so that it can end
		for {
			if _, err := r.Read(); err != nil {
				return
			}
		}
	}()
	<-pinged
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pings == 0 {
		t.Fatal("no ping came out between the request's fragments")
	}
}

// Fragments are held to the reader's cap, announced or not, and may not nest.
func TestFragmentsObeyTheCap(t *testing.T) {
	frames := func(ms ...Wire) []byte {
		var out []byte
		for _, m := range ms {
			b, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		return out
	}
	r := NewReader(bytes.NewReader(frames(&Fragment{Size: 1 << 30, More: true, Part: []byte{1}})), 1024)
	if _, err := r.Read(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("announced size over the cap: %v", err)
	}
	r = NewReader(bytes.NewReader(frames(&Fragment{More: true, Part: make([]byte, 600)}, &Fragment{Part: make([]byte, 600)})), 1024)
	if _, err := r.Read(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("parts over the cap: %v", err)
	}
	inner, _ := Encode(&Fragment{Part: []byte{1}})
	r = NewReader(bytes.NewReader(frames(&Fragment{Part: inner[4:]})), 1024)
	if _, err := r.Read(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nested fragment: %v", err)
	}
}

// Large messages decode the same whichever way their body is read: every field, by
// name, in any order, with unknown fields skipped.
func TestLargeBodiesDecodeAsSmallOnes(t *testing.T) {
	big := bytes.Repeat([]byte{7}, aliasAbove+1)
	for _, m := range []Wire{
		&Message{Kind: "k", Body: big},
		&Request{ID: 1<<63 + 5, Kind: "k", Body: big},
		&Reply{ID: 3, Body: big, Error: "e", Code: CodePanic},
		&Reply{ID: 3, Error: string(big)},
	} {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b[4:])
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%T: decoded differently (%v)", m, err)
		}
	}
	// Fields in another order, an unknown one, a nil, str for the body: as the rules say.
	r := newRaw().m(2).s("type").s("request").s("data").m(4).s("later").a(1).i(1).s("body").s(string(big)).s("kind").nil().s("id").i(-1)
	got, err := Decode(r.Bytes())
	want := &Request{ID: 1<<64 - 1, Body: big}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("odd large request: %v", err)
	}
	bad := newRaw().m(2).s("type").s("request").s("data").m(2).s("body").b(big).s("id").f(1.5)
	if _, err := Decode(bad.Bytes()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a float id in a large request: %v", err)
	}
}
