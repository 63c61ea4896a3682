"""The runtime as a parent sees it, over real socket pairs: the handshake, pings, requests
both ways, the shutdown, and the protocol's exit codes."""

import os
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from procsup_child import wire  # noqa: E402


class Parent:
    """Starts tests/testworker.py as procsup would: a control and a log socket pair."""

    def __init__(self, mode="", env=None, fds=True):
        self.control, child_control = socket.socketpair()
        self.logs, child_logs = socket.socketpair()
        e = dict(os.environ, WORKER_MODE=mode, **(env or {}))
        e.pop("PROCSUP_FDS", None)
        if fds:
            e["PROCSUP_FDS"] = f"{child_control.fileno()},{child_logs.fileno()}"
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "testworker.py")], env=e,
                                     pass_fds=(child_control.fileno(), child_logs.fileno()),
                                     stderr=subprocess.DEVNULL)
        child_control.close()
        child_logs.close()
        self.control.settimeout(10)

    def send(self, type_, data):
        self.control.sendall(wire.encode(type_, data))

    def recv(self):
        n = wire.frame_length(self._exact(4), wire.DEFAULT_MAX_FRAME)
        return wire.decode(self._exact(n))

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.control.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def initialize(self):
        self.send("initialize_request", {"ping_interval_ns": 0, "max_frame": 0, "fragments": True})
        type_, m = self.recv()
        return type_, m

    def wait(self):
        return self.proc.wait(timeout=10)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.control.close()
        self.logs.close()


class Runtime(unittest.TestCase):
    def parent(self, *args, **kw):
        p = Parent(*args, **kw)
        self.addCleanup(p.close)
        return p

    def test_lifecycle(self):
        p = self.parent()
        self.assertEqual(p.initialize(), ("initialize_response", {"error": "", "max_frame": wire.DEFAULT_MAX_FRAME, "fragments": True}))
        p.send("ping_request", {"sent_at_ns": 42})
        type_, pong = p.recv()
        self.assertEqual((type_, pong["sent_at_ns"]), ("pong_response", 42))
        self.assertGreater(pong["child_time_ns"], 0)
        p.send("request", {"id": 7, "kind": "upper", "body": b"abc"})
        self.assertEqual(p.recv(), ("reply", {"id": 7, "body": b"ABC", "error": "", "code": ""}))
        p.send("request", {"id": 8, "kind": "fail"})
        _, r = p.recv()
        self.assertEqual((r["id"], r["error"], r["code"]), (8, "asked to fail", "failed"))
        p.send("request", {"id": 9, "kind": "nothing-handles-this"})
        _, r = p.recv()
        self.assertEqual((r["id"], r["code"]), (9, wire.CODE_UNHANDLED))
        # The worker's own request to the parent: ids of its own, answered by id.
        p.send("request", {"id": 10, "kind": "ask-parent", "body": b"q"})
        type_, q = p.recv()
        self.assertEqual((type_, q["kind"], q["body"]), ("request", "question", b"q"))
        p.send("reply", {"id": q["id"], "body": b"a"})
        self.assertEqual(p.recv()[1]["body"], b"a")
        p.send("shutdown_request", {"reason": "test over"})
        type_, ex = p.recv()
        self.assertEqual(type_, "exiting")
        self.assertIn("test over", ex["reason"])
        self.assertGreaterEqual(ex["log_records"], 1)  # "worker ready"
        self.assertEqual(p.wait(), 0)

    def test_quick_requests_are_answered_in_order(self):
        p = self.parent("quick")
        p.initialize()
        for i in range(50):
            p.send("request", {"id": i + 1, "kind": "echo", "body": str(i).encode()})
        p.send("request", {"id": 99, "kind": "fail"})
        for i in range(50):
            self.assertEqual(p.recv(), ("reply", {"id": i + 1, "body": str(i).encode(), "error": "", "code": ""}))
        _, r = p.recv()
        self.assertEqual((r["id"], r["error"], r["code"]), (99, "quick failure", "failed"))
        p.send("shutdown_request", {})
        self.assertEqual(p.recv()[0], "exiting")
        self.assertEqual(p.wait(), 0)

    def test_preload_runs_before_the_handshake(self):
        marker = os.path.join(self.tmp(), "preloaded")
        p = self.parent(env={"PRELOAD_FILE": marker})
        deadline = time.monotonic() + 10
        while not os.path.exists(marker):  # before anything was sent to it
            self.assertLess(time.monotonic(), deadline, "preload did not run")
            time.sleep(0.01)
        self.assertEqual(p.initialize()[0], "initialize_response")

    def test_importing_starts_no_thread(self):
        out = subprocess.check_output([sys.executable, "-c",
                                       "import sys, threading; sys.path.insert(0, %r); import procsup_child; "
                                       "print(threading.active_count())" % os.path.join(HERE, "..")])
        self.assertEqual(out.strip(), b"1")

    def tmp(self):
        import tempfile
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        return d

    def test_failed_initialization_exits_1(self):
        p = self.parent("initfail")
        type_, m = p.initialize()
        self.assertEqual((type_, m["error"]), ("initialize_response", "model file missing"))
        self.assertEqual(p.wait(), 1)

    def test_run_raising_exits_70_with_its_traceback(self):
        p = self.parent("runraise")
        p.initialize()
        type_, ex = p.recv()
        self.assertEqual(type_, "exiting")
        self.assertIn("ValueError: run exploded", ex["panic"])
        self.assertEqual(p.wait(), 70)

    def test_parent_gone_exits_1(self):
        p = self.parent()
        p.initialize()
        p.control.shutdown(socket.SHUT_RDWR)
        self.assertEqual(p.wait(), 1)

    def test_silent_parent_exits_1(self):
        p = self.parent(env={"PROCSUP_SILENCE_GRACE": "0s"})
        p.send("initialize_request", {"ping_timeout_ns": 200_000_000, "fragments": True})
        p.recv()
        began = time.monotonic()
        self.assertEqual(p.wait(), 1)
        self.assertGreater(time.monotonic() - began, 0.2)

    def test_not_a_child_exits_2(self):
        p = self.parent(fds=False)
        self.assertEqual(p.wait(), 2)

    def test_shutdown_during_a_blocking_init_exits_0(self):
        p = self.parent("initslow")
        p.send("initialize_request", {"fragments": True})
        p.send("shutdown_request", {"reason": "stop"})
        type_, ex = p.recv()
        self.assertEqual(type_, "exiting")
        self.assertEqual(p.wait(), 0)

    def test_garbage_from_the_parent_exits_1(self):
        p = self.parent()
        p.initialize()
        p.control.sendall(b"\x00\x00\x00\x03\xc1\xc1\xc1")
        self.assertEqual(p.wait(), 1)


if __name__ == "__main__":
    unittest.main()
