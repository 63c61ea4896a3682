# The smallest worker on procsup's Python runtime: nothing to initialize, answers echo on
# its reader thread (quick_requests), as the Go benchmark's minimal child does.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "childproc", "python"))

from procsup_child import Worker, run  # noqa: E402


class Minimal(Worker):
    quick_requests = True

    def on_request(self, peer, kind, body):
        return body


run(Minimal(), watchdog_threshold=0)
