// Package wireslog converts log attributes between log/slog and their wire form
// (wire.Attr): the child's slog handler (package childproc/childlog) writes them, the
// parent's log reader reads them back. It is a package apart so that a child that does
// not log through slog links neither slog nor fmt (a smaller binary, fewer pages
// resident).
package wireslog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/procsup/procsup/messages/wire"
)

// FromSlog converts a slog attribute to its wire form, resolving LogValuers and keeping
// groups nested.
func FromSlog(a slog.Attr) wire.Attr {
	v := a.Value.Resolve()
	out := wire.Attr{Key: a.Key}
	switch v.Kind() {
	case slog.KindString:
		out.Kind, out.Value = "string", v.String()
	case slog.KindInt64:
		out.Kind, out.Value = "int", v.Int64()
	case slog.KindUint64:
		out.Kind, out.Value = "uint", v.Uint64()
	case slog.KindFloat64:
		out.Kind, out.Value = "float", v.Float64()
	case slog.KindBool:
		out.Kind, out.Value = "bool", v.Bool()
	case slog.KindTime:
		out.Kind, out.Value = "time", v.Time().UnixNano()
	case slog.KindDuration:
		out.Kind, out.Value = "duration", int64(v.Duration())
	case slog.KindGroup:
		out.Kind = "group"
		for _, m := range v.Group() {
			out.Group = append(out.Group, FromSlog(m))
		}
	default:
		out.Kind, out.Value = "any", fmt.Sprint(v.Any())
	}
	return out
}

// ToSlog converts a wire attribute back to a slog attribute. A value that does not match
// its kind (a child may send anything) is kept as it came, never dropped.
func ToSlog(a wire.Attr) slog.Attr {
	if a.Value == nil {
		if z, ok := zeroOfKind(a.Key, a.Kind); ok {
			return z
		}
	}
	switch a.Kind {
	case "group":
		members := make([]any, 0, len(a.Group))
		for _, m := range a.Group {
			members = append(members, ToSlog(m))
		}
		return slog.Group(a.Key, members...)
	case "int":
		if n, ok := asInt64(a.Value); ok {
			return slog.Int64(a.Key, n)
		}
	case "uint":
		if n, ok := asInt64(a.Value); ok && n >= 0 {
			return slog.Uint64(a.Key, uint64(n))
		}
		if n, ok := a.Value.(uint64); ok {
			return slog.Uint64(a.Key, n)
		}
	case "float":
		switch f := a.Value.(type) {
		case float64:
			return slog.Float64(a.Key, f)
		case float32:
			return slog.Float64(a.Key, float64(f))
		}
	case "bool":
		if b, ok := a.Value.(bool); ok {
			return slog.Bool(a.Key, b)
		}
	case "time":
		if n, ok := asInt64(a.Value); ok {
			return slog.Time(a.Key, time.Unix(0, n))
		}
	case "duration":
		if n, ok := asInt64(a.Value); ok {
			return slog.Duration(a.Key, time.Duration(n))
		}
	case "string", "any":
		if s, ok := a.Value.(string); ok {
			return slog.String(a.Key, s)
		}
	}
	return slog.Any(a.Key, a.Value)
}

func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n <= 1<<63-1 {
			return int64(n), true
		}
	}
	return 0, false
}

// zeroOfKind is the attribute a missing value of kind stands for: its kind's zero.
func zeroOfKind(key, kind string) (slog.Attr, bool) {
	switch kind {
	case "string", "any":
		return slog.String(key, ""), true
	case "int":
		return slog.Int64(key, 0), true
	case "uint":
		return slog.Uint64(key, 0), true
	case "float":
		return slog.Float64(key, 0), true
	case "bool":
		return slog.Bool(key, false), true
	case "time":
		return slog.Time(key, time.Time{}), true
	case "duration":
		return slog.Duration(key, 0), true
	}
	return slog.Attr{}, false
}
