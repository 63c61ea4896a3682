"""The child runtime: the handshake, the read loop, pings, requests both ways, shutdown.

Sockets are read and written by threads of the runtime, not by the event loop: a pong is
sent by the reader thread as soon as the ping is read, whatever the application's code
does with the loop. The application's hooks run on one asyncio event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from . import wire
from .logs import LogSink, LogHandler
from .watchdog import LoopWatchdog

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_CHILD = 2
EXIT_PANIC = 70

HANDSHAKE_TIMEOUT = 60.0
"""How long the runtime waits for the InitializeRequest, in seconds."""

SILENCE_GRACE = 10.0
"""Added to the parent's ping timeout: a child that hears nothing for that long exits.
The environment variable PROCSUP_SILENCE_GRACE ("500ms", "2s") replaces it, as for the Go
runtime."""


def _silence_grace() -> float:
    v = os.environ.get("PROCSUP_SILENCE_GRACE", "")
    for unit, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if v.endswith(unit):
            try:
                return float(v[: -len(unit)]) * scale
            except ValueError:
                break
    return SILENCE_GRACE

INIT_CANCEL_GRACE = 0.5
"""How long the runtime waits for ``init`` to return once a shutdown cancelled it."""

RUN_GRACE = 1.0
"""How long the runtime waits for handlers still at work at the end."""

log = logging.getLogger("procsup_child")


class RemoteError(Exception):
    """An error reply: from the parent to one of this child's requests, or raised by a
    request handler to answer with it (``code`` classifies it for programs)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.message, self.code = message, code


class NotAChild(Exception):
    """The process was not started by procsup (no ``PROCSUP_FDS``)."""


class _Writer:
    """Writes whole frames to the control socket from any thread, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.bulk = threading.Lock()  # one fragmented frame at a time
        self.max_frame = wire.DEFAULT_MAX_FRAME
        self.fragments = False

    def write(self, type_: str, data: dict[str, Any]) -> None:
        frame = wire.encode(type_, data)
        size = len(frame) - 4
        if size > self.max_frame:
            raise wire.FrameTooLarge(size, self.max_frame, "to the parent")
        if self.fragments and size > wire.FRAGMENT_SIZE:
            body = frame[4:]
            with self.bulk:
                for off in range(0, size, wire.FRAGMENT_SIZE):
                    part = body[off:off + wire.FRAGMENT_SIZE]
                    f: dict[str, Any] = {"more": off + len(part) < size, "part": part}
                    if off == 0:
                        f["size"] = size
                    with self.lock:
                        self.sock.sendall(wire.encode("fragment", f))
            return
        with self.lock:
            self.sock.sendall(frame)


class Peer:
    """The parent, as the application sees it: messages and requests to it, the
    configuration it sent, and a logger whose records go to it."""

    def __init__(self, session: "_Session") -> None:
        self._s = session

    @property
    def payload(self) -> bytes:
        """The configuration the parent sent in its InitializeRequest."""
        return self._s.init.get("payload") or b""

    @property
    def debug(self) -> bool:
        """Whether the parent asked for debug output."""
        return bool(self._s.init.get("debug"))

    async def send(self, kind: str, body: bytes = b"") -> None:
        """Sends a one-way message to the parent. A body over the parent's cap raises
        :class:`wire.FrameTooLarge`; nothing is sent."""
        await self._s.write("message", {"kind": kind, "body": body})

    async def request(self, kind: str, body: bytes = b"", timeout: float | None = None) -> bytes:
        """Sends a request to the parent and returns its reply's body; an error reply
        raises :class:`RemoteError`, a timeout :class:`TimeoutError`."""
        return await self._s.request(kind, body, timeout)

    async def shutdown_requested(self) -> str:
        """Waits until the parent asks this child to shut down; returns its reason."""
        await self._s.shutdown.wait()
        return self._s.shutdown_reason


class Worker:
    """The application: subclass it and override the hooks it needs.

    Each hook may be ``async def`` (it runs on the event loop) or a plain ``def`` (it runs
    in a thread of its own, so it may block). A request runs as a task of its own and may
    itself await ``peer.request``; messages are handled one at a time, in order.

    ``quick_requests = True`` with a plain ``def on_request`` says requests are quick and
    never wait (no I/O that can block, no ``peer.request``): the runtime's reader thread
    then answers each itself, in order, without a hand-off to the event loop. A request
    that waits holds up everything behind it, pings included.
    """

    quick_requests: bool = False

    async def init(self, peer: Peer) -> None:
        """Initializes the worker (loads its model, say) before it is ready. An exception
        is a failed initialization: its text goes to the parent and the child exits 1.
        A shutdown cancels it."""

    async def run(self, peer: Peer) -> None:
        """The worker's life once ready; the child exits 0 when it returns. By default it
        waits for the parent's shutdown. An exception ends the child with exit code 70,
        its traceback in ``exiting``."""
        await peer.shutdown_requested()

    async def on_message(self, peer: Peer, kind: str, body: bytes) -> None:
        """Handles a one-way message from the parent."""

    async def on_request(self, peer: Peer, kind: str, body: bytes) -> bytes:
        """Answers a request from the parent. An exception becomes an error reply (its
        ``code`` attribute, if any, classifies it) and the child carries on."""
        raise RemoteError(f"no handler for requests of kind {kind!r}", wire.CODE_UNHANDLED)

    async def on_shutdown(self, reason: str) -> None:
        """Called when the parent asks for shutdown, before ``run`` is cancelled."""


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Calls a hook: awaited when it is a coroutine function, in a thread otherwise."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


class _Session:
    def __init__(self, worker: Worker, control: socket.socket, logs: LogSink) -> None:
        self.worker = worker
        self.control = control
        self.w = _Writer(control)
        self.logs = logs
        self.init: dict[str, Any] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutdown = asyncio.Event()
        self.shutdown_reason = ""
        self.gone = asyncio.Event()  # the parent is gone or broke the protocol
        self.gone_reason = ""
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.messages: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        self.initializing = False  # init runs: a stop must not wait for a blocked loop
        self.last_heard = time.monotonic()
        self.peer = Peer(self)

    # Writing, from the loop: small frames at once, large ones in a thread.
    async def write(self, type_: str, data: dict[str, Any]) -> None:
        size = sum(len(v) for v in data.values() if isinstance(v, (bytes, str)))
        if size > wire.FRAGMENT_SIZE:
            await asyncio.to_thread(self.w.write, type_, data)
        else:
            self.w.write(type_, data)

    async def request(self, kind: str, body: bytes, timeout: float | None) -> bytes:
        assert self.loop is not None
        self.next_id += 1
        rid = self.next_id
        fut: asyncio.Future[Any] = self.loop.create_future()
        self.pending[rid] = fut
        try:
            await self.write("request", {"id": rid, "kind": kind, "body": body})
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(rid, None)
        if reply["error"]:
            raise RemoteError(reply["error"], reply["code"])
        return reply["body"] or b""

    # The reader thread hands frames to the loop with these.
    def deliver(self, type_: str, m: dict[str, Any]) -> None:
        self.last_heard = time.monotonic()
        if type_ == "shutdown_request":
            if not self.shutdown.is_set():
                self.shutdown_reason = m["reason"]
                self.shutdown.set()
        elif type_ == "message":
            self.messages.put_nowait((m["kind"], m["body"] or b""))
        elif type_ == "request":
            if self.closing:
                self.w.write("reply", {"id": m["id"], "error": "the child is shutting down",
                                       "code": wire.CODE_SHUTTING_DOWN})
                return
            t = asyncio.ensure_future(self.answer(m))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
        elif type_ == "reply":
            fut = self.pending.get(m["id"])
            if fut is not None and not fut.done():
                fut.set_result(m)

    def lost(self, reason: str) -> None:
        if not self.gone.is_set():
            self.gone_reason = reason
            self.gone.set()

    async def answer(self, m: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": m["id"]}
        try:
            body = await _call(self.worker.on_request, self.peer, m["kind"], m["body"] or b"")
            reply["body"] = bytes(body or b"")
        except asyncio.CancelledError:
            reply["error"], reply["code"] = "the child is shutting down", wire.CODE_SHUTTING_DOWN
        except Exception as e:
            reply["error"] = str(e) or type(e).__name__
            reply["code"] = getattr(e, "code", "") or ""
            if not isinstance(e, RemoteError):
                log.error("request handler failed: kind=%s", m["kind"], exc_info=True)
        try:
            await self.write("reply", reply)
        except wire.FrameTooLarge as e:
            await self.write("reply", {"id": m["id"], "error": "reply not sent: " + str(e),
                                       "code": wire.CODE_FRAME_TOO_LARGE})

    async def handle_messages(self) -> None:
        while True:
            kind, body = await self.messages.get()
            try:
                await _call(self.worker.on_message, self.peer, kind, body)
            except Exception:
                log.error("message handler failed: kind=%s", kind, exc_info=True)


def _quick_reply(s: "_Session", m: dict[str, Any]) -> dict[str, Any]:
    """Answers a request on the reader thread (Worker.quick_requests)."""
    reply: dict[str, Any] = {"id": m["id"]}
    try:
        reply["body"] = bytes(s.worker.on_request(s.peer, m["kind"], m["body"] or b"") or b"")
    except Exception as e:
        reply["error"] = str(e) or type(e).__name__
        reply["code"] = getattr(e, "code", "") or ""
        if not isinstance(e, RemoteError):
            log.error("request handler failed: kind=%s", m["kind"], exc_info=True)
    if len(reply.get("body", b"")) > s.w.max_frame:
        return {"id": m["id"], "error": f"reply not sent: {len(reply['body'])} bytes exceeds the parent's "
                f"maximum of {s.w.max_frame}", "code": wire.CODE_FRAME_TOO_LARGE}
    return reply


class _Reader(threading.Thread):
    """Reads the control socket: answers pings at once, hands the rest to the loop."""

    def __init__(self, s: _Session, loop: asyncio.AbstractEventLoop | None) -> None:
        super().__init__(name="procsup-reader", daemon=True)
        self.s, self.loop = s, loop
        self.max_frame = wire.DEFAULT_MAX_FRAME
        self.ahead = bytearray()  # read from the socket, not yet taken
        w = s.worker
        self.quick = bool(getattr(w, "quick_requests", False)) and not inspect.iscoroutinefunction(w.on_request)

    def recv_exact(self, n: int) -> bytes:
        """The next n bytes: from what an earlier recv read ahead, then from the socket
        (one recv usually brings a whole small frame, its length included)."""
        buf = self.ahead
        while len(buf) < n:
            chunk = self.s.control.recv(max(n - len(buf), 1 << 16))
            if not chunk:
                raise EOFError
            buf += chunk
        out, self.ahead = bytes(buf[:n]), buf[n:]
        return out

    def read(self) -> tuple[str, dict[str, Any]]:
        n = wire.frame_length(self.recv_exact(4), self.max_frame)
        return wire.decode(self.recv_exact(n))

    def run(self) -> None:
        loop = self.loop
        assert loop is not None, "started before the event loop was made"
        assembling: bytearray | None = None
        try:
            while True:
                try:
                    type_, m = self.read()
                except wire.UnknownType:
                    continue
                if type_ == "fragment":
                    if assembling is None:
                        if m["size"] > self.max_frame:
                            raise wire.FrameTooLarge(m["size"], self.max_frame, "from the parent")
                        assembling = bytearray()
                    assembling += m["part"] or b""
                    if len(assembling) > self.max_frame:
                        raise wire.FrameTooLarge(len(assembling), self.max_frame, "from the parent")
                    if m["more"]:
                        continue
                    try:
                        type_, m = wire.decode(bytes(assembling))
                    except wire.UnknownType:
                        assembling = None
                        continue
                    assembling = None
                if type_ == "ping_request":
                    self.s.w.write("pong_response", {"sent_at_ns": m["sent_at_ns"], "child_time_ns": time.time_ns()})
                    self.s.last_heard = time.monotonic()
                    continue
                if type_ in ("initialize_request", "initialize_response"):
                    raise wire.Malformed(f"unexpected {type_}")
                if type_ == "request" and self.quick and not self.s.closing:
                    self.s.w.write("reply", _quick_reply(self.s, m))
                    continue
                loop.call_soon_threadsafe(self.s.deliver, type_, m)
                if type_ == "shutdown_request":
                    self.unless_loop_answers(EXIT_OK, "shutdown requested during initialization")
        except (EOFError, ConnectionResetError, OSError):
            loop.call_soon_threadsafe(self.s.lost, "the parent closed the control socket")
            self.unless_loop_answers(EXIT_FAILED, "")
        except wire.WireError as e:
            loop.call_soon_threadsafe(self.s.lost, f"protocol error: {e}")
            self.unless_loop_answers(EXIT_FAILED, "")

    def unless_loop_answers(self, code: int, reason: str) -> None:
        """Ends the process from this thread when init still runs INIT_CANCEL_GRACE from
        now: an init that blocks the event loop (a model load in C) cannot see its
        cancellation. The logs are flushed and, after a shutdown, exiting is sent."""
        if not self.s.initializing:
            return

        def end() -> None:
            if not self.s.initializing:
                return
            self.s.logs.close(1.0)
            if reason:
                try:
                    self.s.w.write("exiting", {"reason": reason, "log_records": self.s.logs.taken()})
                except OSError:
                    pass
            os._exit(code)

        t = threading.Timer(INIT_CANCEL_GRACE, end)
        t.daemon = True
        t.start()


def _open_fds() -> tuple[socket.socket, socket.socket]:
    fds = os.environ.get("PROCSUP_FDS", "")
    parts = fds.split(",")
    if len(parts) != 2:
        raise NotAChild("not started by procsup: PROCSUP_FDS is not set")
    control = socket.socket(fileno=int(parts[0]))
    logs = socket.socket(fileno=int(parts[1]))
    control.setblocking(True)
    logs.setblocking(True)
    return control, logs


def run(worker: Worker, *, preload: Callable[[], Any] | None = None,
        watchdog_threshold: float = 0.5) -> None:
    """Runs ``worker`` as a procsup child and exits the process with the protocol's exit
    code: 0 after a shutdown or when ``run`` returned, 1 when initialization failed or
    the parent is gone, 2 outside procsup, 70 when ``run`` raised.

    ``preload`` runs first, before the handshake (load a model and ``gc.freeze()``
    there). Records of the standard ``logging`` module go to the parent. A callback that
    holds the event loop longer than ``watchdog_threshold`` seconds is logged as a
    warning naming it (0 turns that off).
    """
    sys.exit(serve(worker, preload=preload, watchdog_threshold=watchdog_threshold))


def serve(worker: Worker, *, preload: Callable[[], Any] | None = None,
          watchdog_threshold: float = 0.5) -> int:
    """Runs ``worker`` as :func:`run` does and returns the exit code instead of exiting."""
    try:
        control, logsock = _open_fds()
    except (NotAChild, OSError, ValueError) as e:
        print(f"procsup_child: {e}", file=sys.stderr)
        return EXIT_NOT_CHILD
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns shutdown
    if preload is not None:
        preload()
    sink = LogSink(logsock)
    handler = LogHandler(sink)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        # The handshake's first read, before the event loop is made: no thread for it.
        s = _Session(worker, control, sink)
        reader = _Reader(s, None)
        control.settimeout(HANDSHAKE_TIMEOUT)
        try:
            first = reader.read()
        except (OSError, EOFError, wire.WireError) as e:
            print(f"procsup_child: handshake: {e}", file=sys.stderr)
            return EXIT_FAILED
        control.settimeout(None)
        return asyncio.run(_main(s, reader, first, watchdog_threshold))
    finally:
        root.removeHandler(handler)
        control.close()
        logsock.close()


async def _main(s: _Session, reader: _Reader, first: tuple[str, dict[str, Any]], threshold: float) -> int:
    loop = asyncio.get_running_loop()
    s.loop = reader.loop = loop
    worker, sink = s.worker, s.logs
    type_, req = first
    if type_ != "initialize_request":
        print(f"procsup_child: first message is {type_}, want initialize_request", file=sys.stderr)
        return EXIT_FAILED
    s.init = req
    s.w.max_frame = req["max_frame"] or wire.DEFAULT_MAX_FRAME
    s.w.fragments = req["fragments"]
    sink.set_max_frame(s.w.max_frame)
    sink.start()
    s.initializing = True  # before the reader runs: a shutdown it reads finds it set
    reader.start()
    dog = LoopWatchdog(loop, threshold) if threshold > 0 else None
    if dog is not None:
        dog.start()
    messages = asyncio.ensure_future(s.handle_messages())
    code, reason, panic = EXIT_OK, "", ""
    try:
        # Initialization, cancelled by a shutdown or the parent's loss.
        init = asyncio.ensure_future(_call(worker.init, s.peer))
        stop = asyncio.ensure_future(_first(s.shutdown.wait(), s.gone.wait()))
        done, _ = await asyncio.wait({init, stop}, return_when=asyncio.FIRST_COMPLETED)
        s.initializing = False
        if init not in done:
            init.cancel()
            await asyncio.wait({init}, timeout=INIT_CANCEL_GRACE)
            if s.gone.is_set():
                return await _end(s, sink, EXIT_FAILED, s.gone_reason, "")
            return await _end(s, sink, EXIT_OK, _shutdown_word(s) + " during initialization", "")
        stop.cancel()
        err = init.exception()
        if err is not None:
            s.w.write("initialize_response", {"error": str(err) or type(err).__name__,
                                              "max_frame": wire.DEFAULT_MAX_FRAME, "fragments": True})
            log.error("initialization failed: %s", err)
            sink.close(2.0)
            return EXIT_FAILED
        s.w.write("initialize_response", {"error": "", "max_frame": wire.DEFAULT_MAX_FRAME, "fragments": True})
        reader.max_frame = wire.DEFAULT_MAX_FRAME

        # Running.
        silence = asyncio.ensure_future(_silence(s, req["ping_timeout_ns"] / 1e9))
        run = asyncio.ensure_future(_call(worker.run, s.peer))
        stop = asyncio.ensure_future(_first(s.shutdown.wait(), s.gone.wait()))
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        silence.cancel()
        stop.cancel()
        if s.gone.is_set():
            run.cancel()
            return await _end(s, sink, EXIT_FAILED, s.gone_reason, "")
        if s.shutdown.is_set():  # run may have returned because of it: still a shutdown
            try:
                await _call(worker.on_shutdown, s.shutdown_reason)
            except Exception:
                log.error("shutdown hook failed", exc_info=True)
            if not run.done():
                run.cancel()
                await asyncio.wait({run}, timeout=RUN_GRACE)
            reason = _shutdown_word(s)
        err = run.exception() if run.done() and not run.cancelled() else None
        if err is not None:
            panic = "".join(traceback.format_exception(err))
            log.error("run failed:\n%s", panic)
            code, reason = EXIT_PANIC, f"run raised: {type(err).__name__}: {err}"
        elif not reason:
            reason = "run returned"
        return await _end(s, sink, code, reason, panic)
    finally:
        messages.cancel()
        if dog is not None:
            dog.stop()


async def _first(*aws: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _silence(s: _Session, ping_timeout: float) -> None:
    """Ends the session when nothing came from the parent for its ping timeout plus the
    silence grace: the parent is presumed gone."""
    if ping_timeout <= 0:
        return
    limit = ping_timeout + _silence_grace()
    s.last_heard = time.monotonic()
    while True:
        await asyncio.sleep(min(1.0, limit / 4))
        if time.monotonic() - s.last_heard > limit:
            s.lost("no message from the parent within the ping timeout")
            return


def _shutdown_word(s: _Session) -> str:
    return "shutdown requested: " + s.shutdown_reason if s.shutdown_reason else "shutdown requested"


async def _end(s: _Session, sink: LogSink, code: int, reason: str, panic: str) -> int:
    """Lets the request handlers still at work finish (up to RUN_GRACE, then cancels
    them), flushes the logs, and sends the last word."""
    s.closing = True
    if s.tasks:
        _, late = await asyncio.wait(set(s.tasks), timeout=RUN_GRACE)
        for t in late:
            t.cancel()
    sink.close(2.0)
    if not s.gone.is_set():
        try:
            s.w.write("exiting", {"reason": reason, "log_records": sink.taken(), "panic": panic})
        except OSError:
            pass
    return code
