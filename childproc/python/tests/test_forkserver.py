"""The fork server as its parent sees it: a worker forked with CLONE_PARENT is the
parent's own child, set up as asked; a bad request is an error reply, never the
server's end."""

import os
import socket
import subprocess
import sys
import tempfile
import unittest

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

SCRIPT = """import os, sys
print(os.getppid(), os.getpgrp(), os.getcwd(), " ".join(sys.argv[1:]), os.environ.get("X"),
      "asyncio" in sys.modules, flush=True)
sys.exit(int(sys.argv[1]))
"""


class Forkserver(unittest.TestCase):
    def setUp(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, PYTHONPATH=os.path.join(HERE, ".."))
        self.server = subprocess.Popen([sys.executable, "-m", "procsup_child.forkserver", str(theirs.fileno())],
                                       pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        self.sock = ours
        self.sock.settimeout(30)
        self.addCleanup(self.stop)
        self.assertEqual(self.reply(), {"ready": 1, "version": 1})
        self.dir = tempfile.mkdtemp()
        self.script = os.path.join(self.dir, "w.py")
        with open(self.script, "w") as f:
            f.write(SCRIPT)

    def stop(self):
        self.sock.close()
        self.assertEqual(self.server.wait(timeout=10), 0)  # it ends with its socket

    def reply(self):
        return msgpack.unpackb(self.sock.recv(1 << 16))

    def ask(self, req, fds=()):
        socket.send_fds(self.sock, [msgpack.packb(req)], list(fds))
        return self.reply()

    def test_a_worker_is_the_parents_child_set_up_as_asked(self):
        out = os.path.join(self.dir, "out")
        with open(out, "wb") as f:
            r = self.ask({"script": self.script, "args": ["3", "a"], "env": ["X=1"], "dir": "/tmp",
                          "pdeathsig": 9, "fds": ["stdout"]}, [f.fileno()])
        pid = r["pid"]
        _, status = os.waitpid(pid, 0)  # ECHILD unless it is this process's child
        self.assertEqual(os.waitstatus_to_exitcode(status), 3)
        with open(out) as f:
            self.assertEqual(f.read().split(), [str(os.getpid()), str(pid), "/tmp", "3", "a", "1", "True"])

    def test_bad_requests_are_error_replies(self):
        for req, fds, says in [
            (b"\xc1garbage", [], "malformed"),
            ({"script": 3}, [], "malformed"),
            ({"script": self.script, "args": "3"}, [], "malformed"),
            ({}, [], "script"),
            ({"script": ""}, [], "no script"),
            ({"script": self.script, "fds": ["stdout"]}, [], "descriptors"),
            ({"script": self.script, "fds": ["stdin"]}, [0], "descriptors"),
            ({"script": self.script, "pdeathsig": 99}, [], "signal"),
        ]:
            with self.subTest(req=req):
                data = req if isinstance(req, bytes) else msgpack.packb(req)
                socket.send_fds(self.sock, [data], fds)
                r = self.reply()
                self.assertEqual(r["pid"], 0)
                self.assertIn(says, r["error"])

    def test_a_script_not_there_is_reaped_and_said(self):
        r = self.ask({"script": os.path.join(self.dir, "nope.py")})
        self.assertIn("can't open file", r["error"])
        _, status = os.waitpid(r["pid"], 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 1)
        self.assertIn("pid", self.ask({"script": self.script, "args": ["0"]}))  # it serves on


if __name__ == "__main__":
    unittest.main()
