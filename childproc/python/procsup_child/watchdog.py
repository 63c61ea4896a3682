"""A detector of a blocked event loop: a blocked loop is what gets Python workers killed
as unresponsive (the runtime answers pings from its own thread, but nothing else of the
application runs)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time

log = logging.getLogger("procsup_child.watchdog")

_HERE = os.path.dirname(__file__)
_ASYNCIO = os.path.dirname(asyncio.__file__)


class LoopWatchdog(threading.Thread):
    """Schedules a beat on the loop every threshold/4; when a beat has not run for
    threshold seconds, logs a warning naming the code the loop's thread is in, once per
    stall."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
        super().__init__(name="procsup-watchdog", daemon=True)
        self.loop, self.threshold = loop, threshold
        self.beat = time.monotonic()
        self.loop_thread = threading.get_ident()
        self.stopped = threading.Event()

    def _beat(self) -> None:
        self.beat = time.monotonic()

    def run(self) -> None:
        warned = False
        while not self.stopped.wait(self.threshold / 4):
            try:
                self.loop.call_soon_threadsafe(self._beat)
            except RuntimeError:
                return  # the loop is closed
            stalled = time.monotonic() - self.beat
            if stalled < self.threshold:
                warned = False
                continue
            if not warned:
                warned = True
                log.warning("the event loop is blocked", extra={"blocked_s": round(stalled, 3), "in": self.where()})

    def where(self) -> str:
        """The innermost function of the application's the loop's thread runs."""
        frame = sys._current_frames().get(self.loop_thread)
        best = "?"
        while frame is not None:
            f = frame.f_code.co_filename
            if not f.startswith(_ASYNCIO) and not f.startswith(_HERE):
                best = f"{frame.f_code.co_name} ({os.path.basename(f)}:{frame.f_lineno})"
                break
            frame = frame.f_back
        return best

    def stop(self) -> None:
        self.stopped.set()
