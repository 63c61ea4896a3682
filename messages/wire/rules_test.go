package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// raw builds a msgpack value by hand, keys in the order given, for frames a conforming
// sender would not write.
type raw struct{ bytes.Buffer }

func (r *raw) enc() *msgpack.Encoder { return msgpack.NewEncoder(&r.Buffer) }
func (r *raw) m(n int) *raw          { r.enc().EncodeMapLen(n); return r }
func (r *raw) a(n int) *raw          { r.enc().EncodeArrayLen(n); return r }
func (r *raw) s(v string) *raw       { r.enc().EncodeString(v); return r }
func (r *raw) b(v []byte) *raw       { r.enc().EncodeBytes(v); return r }
func (r *raw) i(v int64) *raw        { r.enc().EncodeInt(v); return r }
func (r *raw) u(v uint64) *raw       { r.enc().EncodeUint(v); return r }
func (r *raw) u8(v uint8) *raw       { r.enc().EncodeUint8(v); return r }
func (r *raw) f(v float64) *raw      { r.enc().EncodeFloat64(v); return r }
func (r *raw) nil() *raw             { r.enc().EncodeNil(); return r }
func (r *raw) x(b ...byte) *raw      { r.Write(b); return r }
func newRaw() *raw                   { return &raw{} }

// rules are the receiving rules of PROTOCOL.md as frames and what a receiver makes of
// them: "ok" and the message's meaning, or the error class.
func rules() []struct {
	name, outcome string
	frame         []byte
} {
	request := func(r *raw) *raw { return r.s("id").u(1).s("kind").s("k").s("body").b([]byte("x")) }
	nested := func(levels int) []byte { // an attribute value of arrays: `levels` containers in all
		r := newRaw().m(2).s("type").s("log_record").s("data").m(1).s("attrs").a(1).m(3).s("key").s("k").s("kind").s("any").s("value")
		for range levels - 5 {
			r.a(1)
		}
		return r.a(0).Bytes()
	}
	type rule = struct {
		name, outcome string
		frame         []byte
	}
	out := []rule{
		{"data_before_type", "ok", newRaw().m(2).s("data").x(request(newRaw().m(3)).Bytes()...).s("type").s("request").Bytes()},
		{"unknown_field_ignored", "ok", request(newRaw().m(2).s("type").s("request").s("data").m(4)).s("later").i(3).Bytes()},
		{"missing_fields_are_zero", "ok", newRaw().m(2).s("type").s("request").s("data").m(1).s("id").u(1).Bytes()},
		{"nil_field_is_zero", "ok", newRaw().m(2).s("type").s("request").s("data").m(2).s("id").u(1).s("kind").nil().Bytes()},
		{"nil_data_is_all_zero", "ok", newRaw().m(2).s("type").s("request").s("data").nil().Bytes()},
		{"missing_data_is_all_zero", "ok", newRaw().m(1).s("type").s("shutdown_request").Bytes()},
		{"str_for_bin", "ok", newRaw().m(2).s("type").s("message").s("data").m(2).s("kind").s("k").s("body").s("text").Bytes()},
		{"bin_for_str", "ok", newRaw().m(2).s("type").s("message").s("data").m(2).s("kind").b([]byte("k")).s("body").b(nil).Bytes()},
		{"any_int_width", "ok", newRaw().m(2).s("type").s("request").s("data").m(1).s("id").u8(7).Bytes()},
		{"negative_id_is_its_bits", "ok", newRaw().m(2).s("type").s("request").s("data").m(1).s("id").i(-1).Bytes()},
		{"float_for_int", "malformed", newRaw().m(2).s("type").s("request").s("data").m(1).s("id").f(1.5).Bytes()},
		{"str_for_int", "malformed", newRaw().m(2).s("type").s("request").s("data").m(1).s("id").s("1").Bytes()},
		{"data_not_a_map", "malformed", newRaw().m(2).s("type").s("request").s("data").a(3).u(1).s("k").b(nil).Bytes()},
		{"body_not_a_map", "malformed", newRaw().a(2).s("request").m(0).Bytes()},
		{"type_missing", "malformed", newRaw().m(1).s("data").m(0).Bytes()},
		{"type_empty", "malformed", newRaw().m(2).s("type").s("").s("data").m(0).Bytes()},
		{"type_unknown", "unknown-type", newRaw().m(2).s("type").s("from_the_future").s("data").m(0).Bytes()},
		{"trailing_bytes", "malformed", newRaw().m(2).s("type").s("shutdown_request").s("data").m(0).x(0x00).Bytes()},
		{"reserved_code", "malformed", newRaw().m(2).s("type").s("shutdown_request").s("data").x(0xc1).Bytes()},
		{"container_claims_more_than_the_body", "malformed", newRaw().m(2).s("type").s("log_record").s("data").m(1).s("attrs").x(0xdd, 0x40, 0, 0, 0).Bytes()},
		{"empty_body", "malformed", nil},
		{"nesting_at_the_limit", "ok", nested(MaxDepth)},
		{"nesting_over_the_limit", "malformed", nested(MaxDepth + 1)},
	}
	for i := range out {
		out[i].frame = frame(out[i].frame)
	}
	tooLarge := binary.BigEndian.AppendUint32(nil, DefaultMaxFrame+1)
	return append(out, rule{"length_over_the_cap", "too-large", append(tooLarge, 0x80)})
}

// outcome says what Read makes of a frame, as rules.txt writes it.
func outcome(fr []byte) string {
	m, err := NewReader(bytes.NewReader(fr), 0).Read()
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return "too-large"
	case errors.Is(err, ErrUnknownType):
		return "unknown-type"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case err != nil:
		return "error " + err.Error()
	}
	enc, _ := Encode(m)
	var meaning any
	msgpack.Unmarshal(enc[4:], &meaning)
	js, _ := json.Marshal(meaning)
	return "ok " + string(js)
}

// TestRules checks testdata/rules.txt: each line is `name hex outcome`, a frame and what
// a receiver makes of it (the message it means, in the canonical form, or the class of
// error). Run with -update to rewrite it.
func TestRules(t *testing.T) {
	path := "testdata/rules.txt"
	if *update {
		var out strings.Builder
		out.WriteString("# procsup wire protocol receiving rules: name<TAB>frame in hex<TAB>outcome: ok <the message, canonical, as JSON> | malformed | unknown-type | too-large\n")
		for _, r := range rules() {
			got := outcome(r.frame)
			if strings.Fields(got)[0] != r.outcome {
				t.Fatalf("%s: %s, want %s", r.name, got, r.outcome)
			}
			out.WriteString(r.name + "\t" + hex.EncodeToString(r.frame) + "\t" + got + "\n")
		}
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := readTable(t, path, func(name string, fr []byte, want string) {
		if got := outcome(fr); got != want {
			t.Errorf("%s: %s, rules.txt says %s", name, got, want)
		}
	})
	if n != len(rules()) {
		t.Fatalf("%d rules in the file for %d in the code: run go test -run TestRules -update", n, len(rules()))
	}
}
