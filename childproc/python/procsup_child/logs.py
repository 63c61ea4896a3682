"""Log records to the parent: a ``logging.Handler`` that never blocks, and the sink that
writes records to the log socket (fd 4) from a thread of its own."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import traceback
from typing import Any

from . import wire

QUEUE_RECORDS = 4096
"""How many records wait for the log socket; more are dropped and counted."""

# The attributes every LogRecord has: the rest came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

def _level(levelno: int) -> int:
    """The slog level of a logging level: DEBUG -4, INFO 0, WARNING 4, ERROR (and
    CRITICAL) 8."""
    if levelno >= logging.ERROR:
        return 8
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 0
    return -4


def _attr(key: str, v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"key": key, "kind": "bool", "value": v}
    if isinstance(v, int):
        return {"key": key, "kind": "int" if v < 1 << 63 else "uint", "value": v}
    if isinstance(v, float):
        return {"key": key, "kind": "float", "value": v}
    if isinstance(v, str):
        return {"key": key, "kind": "string", "value": v}
    return {"key": key, "kind": "any", "value": repr(v)}


class LogSink:
    """Numbers the records it takes and sends them on the log socket from its own
    thread. ``put`` never blocks: a record that finds the queue full is dropped, and the
    next one sent says how many went before it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_RECORDS)
        self.lock = threading.Lock()
        self.seq = 0
        self.dropped = 0  # since the last record queued
        self.max_frame = wire.DEFAULT_MAX_FRAME
        self.thread: threading.Thread | None = None

    def set_max_frame(self, n: int) -> None:
        self.max_frame = n

    def start(self) -> None:
        self.thread = threading.Thread(target=self._send, name="procsup-logs", daemon=True)
        self.thread.start()

    def put(self, rec: dict[str, Any]) -> None:
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            rec["dropped"] = self.dropped
            try:
                self.q.put_nowait(rec)
                self.dropped = 0
            except queue.Full:
                self.dropped += 1

    def taken(self) -> int:
        """How many records the sink took in all, sent or dropped."""
        with self.lock:
            return self.seq

    def _send(self) -> None:
        while True:
            rec = self.q.get()
            if rec is None:
                return
            frame = wire.encode("log_record", rec)
            if len(frame) - 4 > self.max_frame:
                cut = max(0, self.max_frame // 2)
                rec["message"] = rec["message"][:cut]
                rec["attrs"] = (rec.get("attrs") or []) + [{"key": "procsup.truncated", "kind": "bool", "value": True}]
                rec["attrs"] = [a for a in rec["attrs"] if len(repr(a)) < cut // 8 or a["key"] == "procsup.truncated"]
                frame = wire.encode("log_record", rec)
            try:
                self.sock.sendall(frame)
            except OSError:
                return

    def close(self, timeout: float) -> None:
        """Sends what is queued, for up to timeout seconds, then stops the thread."""
        if self.thread is None:
            return
        deadline = time.monotonic() + timeout
        while not self.q.empty() and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            self.q.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(max(0.0, deadline - time.monotonic()))


class LogHandler(logging.Handler):
    """A ``logging.Handler`` whose records go to the parent with their level, logger
    name, message, ``extra`` attributes, exception text and source location. It never
    blocks; what it must drop is counted, and the count reaches the parent
    (``Exited.LogsDropped``)."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attrs = [_attr(k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")]
            if record.exc_info and record.exc_info[0] is not None:
                attrs.append(_attr("exception", "".join(traceback.format_exception(*record.exc_info))))
            elif record.exc_text:
                attrs.append(_attr("exception", record.exc_text))
            self.sink.put({
                "time_ns": int(record.created * 1e9), "level": _level(record.levelno),
                "message": record.getMessage(), "logger": record.name, "attrs": attrs,
                "source": {"function": record.funcName or "", "file": record.pathname or "", "line": record.lineno or 0},
            })
        except Exception:
            self.handleError(record)
