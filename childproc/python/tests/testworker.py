"""A Python worker for procsup's Go tests: its behaviour is chosen by WORKER_MODE and by
each request's kind."""

import asyncio
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from procsup_child import RemoteError, Worker, run  # noqa: E402

log = logging.getLogger("testworker")
MODE = os.environ.get("WORKER_MODE", "")


def burst(n):
    for i in range(n):
        log.info("burst", extra={"i": i})


class Test(Worker):
    async def init(self, peer):
        if MODE == "initfail":
            raise RuntimeError("model file missing")
        if MODE == "initslow":
            time.sleep(3600)  # ignores the cancellation: a blocking load
        log.info("worker ready", extra={"mode": MODE})

    async def run(self, peer):
        if MODE == "runraise":
            await asyncio.sleep(0.1)
            raise ValueError("run exploded")
        await peer.shutdown_requested()

    async def on_message(self, peer, kind, body):
        if kind == "note":
            await peer.send("seen", body)
        elif kind == "burst":  # in a thread: the loop stays free, the watchdog quiet
            await asyncio.to_thread(burst, int(body))

    async def on_request(self, peer, kind, body):
        if kind == "echo":
            return body
        if kind == "upper":
            return body.upper()
        if kind == "fail":
            raise RemoteError("asked to fail", code="failed")
        if kind == "oops":
            raise KeyError("a bug")
        if kind == "ask-parent":
            return await peer.request("question", body)
        if kind == "block":  # holds the event loop: pings go on, the watchdog says so
            time.sleep(float(body))
            return b"unblocked"
        if kind == "log":
            try:
                raise ValueError("for the record")
            except ValueError:
                log.warning("with attributes", extra={"user": "ann", "n": 3}, exc_info=True)
            return b""
        if kind == "big":
            return b"x" * int(body)
        if kind == "crash":
            os._exit(3)
        if kind == "preloaded":  # who imported the fork server's preloaded module, if any
            mod = sys.modules.get("preloaded")
            return str(mod.IMPORTED_BY if mod else 0).encode()
        raise RemoteError(f"unknown kind {kind!r}", code="unhandled")


class Quick(Worker):
    """Answers on the runtime's reader thread: echo, and fail with a code."""

    quick_requests = True

    def on_request(self, peer, kind, body):
        if kind == "fail":
            raise RemoteError("quick failure", code="failed")
        return body


def preload():
    """Says it ran, in the file PRELOAD_FILE names, before the handshake."""
    if os.environ.get("PRELOAD_FILE"):
        with open(os.environ["PRELOAD_FILE"], "w") as f:
            f.write("preloaded")


if __name__ == "__main__":
    worker = Quick() if MODE == "quick" else Test()
    run(worker, preload=preload, watchdog_threshold=float(os.environ.get("WATCHDOG", "0.5")))
