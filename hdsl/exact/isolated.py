"""Z3 in a worker process that can be killed at the deadline.

Z3 does not always honour its timeout: on the layered encoding of a large
network (MNIST, 784 inputs) ``Solver.push()`` internalises the whole encoding
and neither the ``timeout`` parameter nor ``ctx.interrupt()`` stops it
(measured: a 30 s query ran 122 s inside one ``push``). A query's time budget
is a promise to the user, so large encodings are built and checked in a
separate process, which is killed, and restarted lazily, when an answer is
late.

``IsolatedZ3Network`` has the interface of ``hdsl.exact.smt.Z3Network``
(``check`` and ``unstable``), so ``hdsl.exact.decide`` uses either. The
worker keeps a few encodings, so several specs on one box still share one
encoding; one it lacks (new, evicted, or lost with a killed worker) is built
from the arguments kept here, sent only then.

The worker is started with ``python -m hdsl.exact.isolated`` and talks over
two pipes (``multiprocessing.connection``), not through ``multiprocessing``'s
spawn, which would re-import the user's ``__main__`` in the child.
"""

from __future__ import annotations

import atexit
import itertools
import math
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from hdsl.exact.smt import SmtAnswer

#: Seconds past the deadline the parent waits before killing the worker: Z3's
#: own timeout usually answers first, and a kill costs a restart and re-encoding.
KILL_GRACE_S = 0.25
_MAX_ENCODINGS = 8
_ids = itertools.count()


def isolation_available() -> bool:
    """Killable workers need pipes passed by file descriptor (POSIX)."""
    return os.name == "posix"


class _Worker:
    """One Z3 worker process; ``call`` returns its reply, or None after killing it for being late."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.send: Connection | None = None
        self.recv: Connection | None = None
        self.lock = threading.Lock()
        self.restarts = 0

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hdsl.exact.isolated", str(to_child_r), str(from_child_w)],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.send = Connection(to_child_w, readable=False)
        self.recv = Connection(from_child_r, writable=False)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.restarts += 1
        for c in (self.send, self.recv):
            if c is not None:
                c.close()
        self.proc = self.send = self.recv = None

    def call(self, msg: tuple, deadline: float):
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            self._start()
        try:
            self.send.send(msg)
            wait = None if math.isinf(deadline) else max(0.0, deadline - time.monotonic()) + KILL_GRACE_S
            if self.recv.poll(wait):
                return self.recv.recv()
        except (EOFError, OSError, BrokenPipeError):
            pass  # the worker died (out of memory, say): inconclusive, and a fresh one next time
        self.kill()
        return None

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.send.send(("quit",))
                self.proc.wait(timeout=2)
            except Exception:  # noqa: BLE001 - best effort at exit; kill below
                pass
        self.kill()
        self.restarts = 0


_WORKER = _Worker()
atexit.register(_WORKER.close)


class IsolatedZ3Network:
    """A ``Z3Network`` (or ``CompactZ3Network``) that lives in the killable worker."""

    def __init__(self, net, lo, hi, pre_bounds=None, fixed=None, compact: bool = False):
        self.id = next(_ids)
        self._args = (net, np.asarray(lo), np.asarray(hi), pre_bounds, fixed, compact)
        self.unstable = 0

    def check(self, rows, bound: np.ndarray, timeout_s: float | None) -> SmtAnswer:
        t0 = time.monotonic()
        if timeout_s is not None and timeout_s <= 0:
            return SmtAnswer("timeout", reason="no time left")
        deadline = t0 + timeout_s if timeout_s is not None else float("inf")
        w = _WORKER
        bound = np.asarray(bound)
        with w.lock:
            # Ask by id first; the network goes over the pipe only when the worker lacks the encoding
            # (new, evicted from its cache, or lost with a killed worker).
            reply = w.call(("check", self.id, None, rows, bound, timeout_s), deadline)
            if reply is not None and reply[0] == "missing":
                left = None if timeout_s is None else deadline - time.monotonic()
                reply = w.call(("check", self.id, self._args, rows, bound, left), deadline)
        if reply is None:
            return SmtAnswer("timeout", time_s=time.monotonic() - t0,
                             reason="Z3 did not answer by the deadline; its worker was stopped")
        if reply[0] != "answer":
            return SmtAnswer("unknown", time_s=time.monotonic() - t0, reason=f"Z3 worker: {reply[-1]}")
        _, self.unstable, ans = reply
        return ans


def _serve(recv: Connection, send: Connection) -> None:
    from hdsl.exact.smt import CompactZ3Network, Z3Network

    encs: "OrderedDict[int, Z3Network]" = OrderedDict()
    while True:
        try:
            msg = recv.recv()
        except EOFError:
            return
        if msg[0] == "quit":
            return
        if msg[0] == "stall":  # tests of the kill path: a worker that never answers in time
            time.sleep(msg[1])
            send.send(("stalled",))
            continue
        _, enc_id, args, rows, bound, timeout_s = msg
        try:
            t0 = time.monotonic()
            enc = encs.get(enc_id)
            if enc is None and args is None:
                send.send(("missing",))
                continue
            if enc is None:
                net, lo, hi, pre, fixed, compact = args
                enc = (CompactZ3Network if compact else Z3Network)(net, lo, hi, pre, fixed)
                encs[enc_id] = enc
                while len(encs) > _MAX_ENCODINGS:
                    encs.popitem(last=False)
            encs.move_to_end(enc_id)
            left = None if timeout_s is None else timeout_s - (time.monotonic() - t0)
            send.send(("answer", enc.unstable, enc.check(rows, bound, left)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as an inconclusive answer
            send.send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
