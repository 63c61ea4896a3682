"""The procsup wire protocol: frames, messages and the receiving rules.

A frame is a 4-byte big-endian length and a msgpack map ``{"type": str, "data": map}``.
:func:`encode` makes one; :func:`decode` reads a body by the rules of
``messages/wire/PROTOCOL.md``: fields by name, unknown ones ignored, a missing or nil
field its zero value, ``str`` and ``bin`` interchangeable, any integer width, and a
protocol error (:class:`Malformed`) for anything else.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

DEFAULT_MAX_FRAME = 16 << 20
"""The default cap on a frame's body: 16 MiB."""

FRAGMENT_SIZE = 256 << 10
"""The largest part of a large frame in one fragment."""

MAX_DEPTH = 32
"""How deeply arrays and maps may nest in one frame body."""

CODE_FRAME_TOO_LARGE = "frame_too_large"
CODE_PANIC = "panic"
CODE_UNHANDLED = "unhandled"
CODE_SHUTTING_DOWN = "shutting_down"

_LEN = struct.Struct(">I")

# Each message type's fields and their kinds: "int" (signed 64), "uint", "str", "bin",
# "bool", "attrs" (an array of attr maps), "source" (a map or nil).
SCHEMAS: dict[str, dict[str, str]] = {
    "initialize_request": {
        "ping_interval_ns": "int", "ping_timeout_ns": "int", "high_ping_threshold_ns": "int",
        "debug": "bool", "payload": "bin", "max_frame": "int", "fragments": "bool",
    },
    "initialize_response": {"error": "str", "max_frame": "int", "fragments": "bool"},
    "ping_request": {"sent_at_ns": "int"},
    "pong_response": {"sent_at_ns": "int", "child_time_ns": "int"},
    "shutdown_request": {"reason": "str"},
    "exiting": {"reason": "str", "log_records": "uint", "panic": "str"},
    "log_record": {
        "time_ns": "int", "level": "int", "message": "str", "logger": "str", "attrs": "attrs",
        "source": "source", "seq": "uint", "dropped": "uint",
    },
    "message": {"kind": "str", "body": "bin"},
    "request": {"id": "uint", "kind": "str", "body": "bin"},
    "reply": {"id": "uint", "body": "bin", "error": "str", "code": "str"},
    "fragment": {"size": "uint", "more": "bool", "part": "bin"},
}


class WireError(Exception):
    """A frame that cannot be read or sent."""


class Malformed(WireError):
    """A frame body that breaks the protocol's rules."""


class UnknownType(WireError):
    """A well-formed frame of a type this side does not know: skipped."""

    def __init__(self, type_: str) -> None:
        super().__init__(f"unknown message type {type_!r}")
        self.type = type_


class FrameTooLarge(WireError):
    """A frame body larger than the receiver accepts."""

    def __init__(self, size: int, max_: int, direction: str = "") -> None:
        where = f" {direction}" if direction else ""
        super().__init__(f"frame of {size} bytes{where} exceeds the maximum of {max_}")
        self.size, self.max, self.direction = size, max_, direction


def encode(type_: str, data: dict[str, Any]) -> bytes:
    """Returns the frame of a message: the length prefix and the msgpack body."""
    body = msgpack.packb({"type": type_, "data": data}, use_bin_type=True)
    return _LEN.pack(len(body)) + body


def frame_length(prefix: bytes, max_frame: int) -> int:
    """Reads a frame's 4-byte length, refusing one over max_frame."""
    (n,) = _LEN.unpack(prefix)
    if n > max_frame:
        raise FrameTooLarge(n, max_frame, "from the parent")
    return n


def _depth_ok(v: dict[Any, Any] | list[Any], level: int) -> bool:
    """Reports whether the container v, at level, nests no deeper than MAX_DEPTH."""
    if level > MAX_DEPTH:
        return False
    for x in v.values() if isinstance(v, dict) else v:
        if isinstance(x, (dict, list)) and not _depth_ok(x, level + 1):
            return False
    return True


def _field(kind: str, v: Any) -> Any:
    if v is None:
        return _zero(kind)
    if kind == "int" or kind == "uint":
        if isinstance(v, bool) or not isinstance(v, int):
            raise Malformed(f"{type(v).__name__} where an integer belongs")
        if kind == "uint" and v < 0:
            v &= (1 << 64) - 1  # its bits, as the protocol reads an id
        return v
    if kind == "str":
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        if not isinstance(v, str):
            raise Malformed(f"{type(v).__name__} where a string belongs")
        return v
    if kind == "bin":
        if isinstance(v, str):
            return v.encode()
        if not isinstance(v, bytes):
            raise Malformed(f"{type(v).__name__} where bytes belong")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise Malformed(f"{type(v).__name__} where a boolean belongs")
        return v
    if kind == "attrs":
        if not isinstance(v, list):
            raise Malformed("attrs is not an array")
        return [_attr(a) for a in v]
    if kind == "source":
        if not isinstance(v, dict):
            raise Malformed("source is not a map")
        return {"function": _field("str", v.get("function")), "file": _field("str", v.get("file")),
                "line": _field("int", v.get("line"))}
    raise Malformed(f"unknown field kind {kind}")


def _attr(a: Any) -> dict[str, Any]:
    if not isinstance(a, dict):
        raise Malformed("an attr is not a map")
    out = {"key": _field("str", a.get("key")), "kind": _field("str", a.get("kind")), "value": a.get("value")}
    if a.get("group") is not None:
        out["group"] = _field("attrs", a.get("group"))
    return out


def _zero(kind: str) -> Any:
    return {"int": 0, "uint": 0, "str": "", "bin": None, "bool": False, "attrs": None, "source": None}[kind]


def decode(body: bytes) -> tuple[str, dict[str, Any]]:
    """Decodes one frame body into its type and its fields (every field of the type,
    zero where absent). Raises :class:`Malformed` or :class:`UnknownType`."""
    if not body:
        raise Malformed("empty frame")
    try:
        v = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True,
                            unicode_errors="surrogateescape")
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as e:
        raise Malformed(f"the body is not one msgpack value: {e}") from None
    except Exception as e:  # OutOfData and the like: cut short, or claims more than it has
        raise Malformed(f"the body does not decode: {e}") from None
    if not isinstance(v, dict):
        raise Malformed("the body is not a map")
    if not _depth_ok(v, 1):
        raise Malformed(f"nested more than {MAX_DEPTH} deep")
    type_ = v.get("type")
    if isinstance(type_, bytes):
        type_ = type_.decode("utf-8", errors="replace")
    if not isinstance(type_, str) or not type_:
        raise Malformed("no message type")
    data = v.get("data")
    if data is not None and not isinstance(data, dict):
        raise Malformed("data is not a map")
    schema = SCHEMAS.get(type_)
    if schema is None:
        raise UnknownType(type_)
    data = data or {}
    fields = {name: _field(kind, data.get(name)) for name, kind in schema.items()}
    return type_, fields
