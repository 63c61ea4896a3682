"""procsup_child: a Python worker supervised by procsup, a Go supervisor of processes.

The Python twin of procsup's Go ``childproc`` package. A worker subclasses
:class:`Worker`, overrides the hooks it needs, and calls :func:`run`::

    import logging
    from procsup_child import Worker, RemoteError, run

    class Echo(Worker):
        async def init(self, peer):
            logging.info("worker ready")
        async def on_request(self, peer, kind, body):
            if kind == "echo":
                return body
            raise RemoteError("unknown kind", code="failed")

    run(Echo())

What the runtime does, as ``messages/wire/PROTOCOL.md`` says:

- the handshake: the parent's ``initialize_request`` (its frame cap, its payload), then
  ``init``, then ``initialize_response``; an exception in ``init`` is a failed
  initialization (exit 1);
- pings, answered at once by the runtime's reader thread, whatever the event loop does;
- messages (one at a time, in order: ``on_message``) and requests (each a task of its own:
  ``on_request``, which may await ``peer.request``) from the parent; ``peer.send`` and
  ``peer.request`` to it; frames over 256 KiB in fragments, both ways; an exception in a
  request handler becomes an error reply and the child carries on;
- the standard ``logging`` module's records go to the parent (level, logger name,
  message, ``extra`` attributes, exception text, source); the handler never blocks, and
  what it drops is counted (``Exited.LogsDropped`` on the parent's side);
- a callback that holds the event loop longer than a threshold is logged as a warning
  naming the function it is in;
- ``shutdown_request``: ``on_shutdown``, then ``run`` is cancelled, the logs flushed,
  ``exiting`` sent, exit 0; during ``init`` it cancels ``init`` (within 0.5 s even if
  ``init`` ignores it); ``run`` returning ends the child with 0, ``run`` raising with 70
  and the traceback in ``exiting``; the parent's socket closing, or its silence for its
  ping timeout plus 10 s, ends it with 1.

Hooks may be ``async def`` (run on the event loop) or plain ``def`` (run in a thread, so
they may block). Importing the package starts no thread; ``run(worker, preload=f)`` calls
``f`` before the handshake, to load a model and ``gc.freeze()`` before serving.

A worker may also be forked from a fork server that has imported the runtime, and the
modules a Go program's ``python.StartForkserver`` preloads, once: see
:mod:`procsup_child.forkserver`. The worker's script is the same either way.
"""

from .runtime import Peer, RemoteError, Worker, run, serve
from .wire import FrameTooLarge

__all__ = ["FrameTooLarge", "Peer", "RemoteError", "Worker", "run", "serve"]
