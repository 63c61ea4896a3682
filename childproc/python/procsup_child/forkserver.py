"""A fork server for procsup's Python workers.

Started by the Go package ``childproc/python`` (``python.StartForkserver``), never by
hand: ``python3 -m procsup_child.forkserver FD [MODULE...]``. It imports procsup's
runtime (asyncio and msgpack with it) and each MODULE once, calls ``gc.freeze()``, and
then starts every worker asked of it by forking itself: a worker begins with all of that
imported, instead of paying for the imports in an interpreter of its own.

Each worker is forked with ``CLONE_PARENT``: its parent is the Go program, as if the
program had started it, so the program reaps it, signals it and sees its exit status;
the fork server is no part of its life after the fork. Before the server answers, the
worker has its own process group, its parent-death signal, its cgroup, its descriptors
(0 on /dev/null, 1 and 2 as asked, 3 and 4 its control and log sockets), its
environment and its working directory, and its script is readable. It then runs the
script as ``python3 SCRIPT ARGS...`` would, as ``__main__``, and exits with the
script's exit code (``sys.exit``), 1 after an exception.

Preloaded modules must start no thread, native ones included: a thread is not forked,
and a lock it held stays held in every worker. The server checks, and does not start if
one did. The fork is a system call, not glibc's ``fork``: C libraries' ``pthread_atfork``
handlers do not run (Python's own ``os.register_at_fork`` functions do).

The protocol, on descriptor FD (a ``SOCK_SEQPACKET`` socket; one msgpack map a packet):

- the server, once: ``{"ready": 1, "version": 1}``, or ``{"error": text}`` and exit 1;
- the parent: ``{"script", "args", "env", "dir", "pdeathsig", "fds"}``, where ``fds``
  names the descriptors passed with it (``SCM_RIGHTS``), in order: any of ``control``,
  ``logs``, ``stdout``, ``stderr``, ``cgroup`` (the worker's cgroup directory);
- the server: ``{"pid": pid}``, or ``{"error": text, "pid": pid}`` (pid 0 when nothing
  was forked; else the worker has exited, for the parent to reap).

The server exits when its socket closes.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import fcntl
import gc
import importlib
import os
import runpy
import socket
import sys
import threading
import traceback
from typing import Any, NoReturn

import msgpack

VERSION = 1
MAX_REQUEST = 1 << 20  # a request's bytes: its environment, mostly
MAX_FDS = 5

_CLONE_PARENT = 0x00008000
_SIGCHLD = 17
_PR_SET_PDEATHSIG = 1
# clone's system call number; its first argument is the flags on each of these.
_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220}
_TARGETS = {"stdout": 1, "stderr": 2, "control": 3, "logs": 4}

# PyDLL: calls hold the GIL, as a fork must.
_libc = ctypes.PyDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_api = ctypes.pythonapi


class ForkError(Exception):
    """A worker could not be forked or set up; its text goes to the parent."""


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python3 -m procsup_child.forkserver FD [MODULE...]", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(argv[1]))
    sock.setblocking(True)
    try:
        if os.uname().machine not in _SYS_CLONE:
            raise ForkError(f"no fork server on {os.uname().machine}")
        importlib.import_module("procsup_child.runtime")
        for name in argv[2:]:
            importlib.import_module(name)
        threads = len(os.listdir("/proc/self/task"))
        if threads > 1:
            raise ForkError(f"the preloaded modules started {threads - 1} thread(s): a fork copies none of them, "
                            "and a lock one holds stays held (OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1 "
                            "keep the usual ones from starting)")
    except BaseException as e:  # an import's SystemExit included: say it, then go
        sock.send(msgpack.packb({"error": f"{type(e).__name__}: {e}"}))
        return 1
    gc.collect()
    sock.send(msgpack.packb({"ready": 1, "version": VERSION}))
    serve(sock)
    return 0


def serve(sock: socket.socket) -> None:
    """Answers the parent's requests, one at a time, until its socket closes."""
    parent = os.getppid()
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, MAX_FDS)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            for fd in fds:
                os.close(fd)
            return
        try:
            reply = fork(sock, parent, data, fds)
        except ForkError as e:
            reply = {"error": str(e), "pid": 0}
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {e}", "pid": 0}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(msgpack.packb(reply))


def _request(data: bytes, fds: list[int]) -> dict[str, Any]:
    """The request in data, checked, with its descriptors by name."""
    try:
        req = msgpack.unpackb(data, raw=False)
    except Exception as e:
        raise ForkError(f"a malformed request: {e}") from None
    if not isinstance(req, dict):
        raise ForkError("a malformed request: not a map")
    script, dir_ = req.get("script"), req.get("dir") or ""
    args, env, names = req.get("args") or [], req.get("env") or [], req.get("fds") or []
    lists = isinstance(args, list) and isinstance(env, list) and isinstance(names, list)
    if not lists or not all(isinstance(x, str) for x in [script, dir_, *args, *env, *names]):
        raise ForkError("a malformed request: script and dir must be strings, args, env and fds lists of them")
    if not script:
        raise ForkError("a request with no script")
    if len(names) != len(fds) or len(set(names)) != len(names) or not set(names) <= {*_TARGETS, "cgroup"}:
        raise ForkError(f"the request names descriptors {names}, {len(fds)} came with it")
    sig = req.get("pdeathsig") or 0
    if not isinstance(sig, int) or not 0 <= sig < 65:
        raise ForkError(f"a bad parent-death signal {sig!r}")
    req.update(args=args, env=env, dir=dir_, pdeathsig=sig, fds=dict(zip(names, fds)))
    return req


def fork(sock: socket.socket, parent: int, data: bytes, fds: list[int]) -> dict[str, Any]:
    """Forks a worker for the request in data and returns the reply to send."""
    req = _request(data, fds)
    r, w = os.pipe()
    try:
        gc.freeze()
        _api.PyOS_BeforeFork()
        pid = _libc.syscall(ctypes.c_long(_SYS_CLONE[os.uname().machine]), ctypes.c_long(_CLONE_PARENT | _SIGCHLD),
                            ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
        if pid == 0:
            _api.PyOS_AfterFork_Child()
            _worker(sock, parent, r, w, req)
        _api.PyOS_AfterFork_Parent()
        if pid < 0:
            raise ForkError(f"clone: {os.strerror(ctypes.get_errno())}")
        os.close(w)
        w = -1
        said = b""
        while chunk := _read(r):
            said += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if said != b"ok":
        return {"error": said.decode(errors="replace") or "the worker died while it was set up", "pid": pid}
    return {"pid": pid}


def _read(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, 4096)
        except InterruptedError:
            continue


def _worker(sock: socket.socket, parent: int, r: int, w: int, req: dict[str, Any]) -> NoReturn:
    """The forked worker: sets itself up, says so on w, runs the script and exits."""
    code = 1
    try:
        try:
            os.close(r)
            sock.close()
            _set_up(parent, req)
        except BaseException as e:
            os.write(w, f"{type(e).__name__}: {e}".encode())
            return  # to the exit below
        os.write(w, b"ok")
        os.close(w)
        code = _run(req["script"])
    finally:
        os._exit(code)


def _set_up(parent: int, req: dict[str, Any]) -> None:
    os.setpgid(0, 0)
    sig = req["pdeathsig"]
    if sig:
        if _libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(sig), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != parent:
            raise ForkError("the parent died during the fork")
    fds: dict[str, int] = req["fds"]
    if "cgroup" in fds:
        procs = os.open("cgroup.procs", os.O_WRONLY, dir_fd=fds["cgroup"])
        try:
            os.write(procs, b"0")
        finally:
            os.close(procs)
    # Every descriptor to 10 and above first, so that no dup2 lands on one still needed.
    fds["null"] = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    high = {name: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for name, fd in fds.items()}
    for fd in fds.values():
        os.close(fd)
    null = high.pop("null")
    os.dup2(null, 0)
    for name, target in _TARGETS.items():
        os.dup2(high.get(name, null), target)
    for fd in [null, *high.values()]:
        os.close(fd)
    env = {}
    for kv in req["env"]:
        k, eq, v = kv.partition("=")
        if eq and k:
            env[k] = v
    for k in [k for k in os.environ if k not in env]:
        del os.environ[k]
    for k, v in env.items():
        if os.environ.get(k) != v:
            os.environ[k] = v
    if req["dir"]:
        os.chdir(req["dir"])
    script = req["script"]
    try:
        with open(script, "rb"):
            pass
    except OSError as e:
        raise ForkError(f"can't open file {script!r}: [Errno {e.errno}] {e.strerror}") from None
    sys.argv = [script, *req["args"]]
    sys.path[0] = os.path.dirname(os.path.abspath(script))


def _run(script: str) -> int:
    """Runs script as __main__, then exits as the interpreter would: its threads joined,
    the atexit functions called, the standard streams flushed."""
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    return code


def _exit_code(c: Any) -> int:
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    print(c, file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        sys.exit(1)
