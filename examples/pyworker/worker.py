"""The example Python worker: answers requests of kind "echo" (the body back), "upper"
(the body upper-cased) and "fail" (an error reply with code "failed"), and logs "worker
ready" when it has initialized. Supervised by main.go beside it: go run ./examples/pyworker
"""

import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "childproc", "python"))

from procsup_child import RemoteError, Worker, run  # noqa: E402

log = logging.getLogger("pyworker")


class Example(Worker):
    async def init(self, peer):
        log.info("worker ready", extra={"kinds": "echo,upper,fail"})

    async def on_request(self, peer, kind, body):
        if kind == "echo":
            return body
        if kind == "upper":
            return body.upper()
        if kind == "fail":
            raise RemoteError("asked to fail", code="failed")
        if kind == "crash":
            os._exit(3)
        raise RemoteError(f"unknown kind {kind!r}", code="unhandled")


if __name__ == "__main__":
    run(Example())
