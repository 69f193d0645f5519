"""User SQL runs in worker processes, so that no statement can stop a node (DESIGN 14).

libSQL's Python binding holds the GIL while a statement runs and offers neither a progress
handler nor an interrupt, so inside the node a runaway statement (``WITH RECURSIVE`` without
end, a huge cross join) would stop every other request, lease renewal and shipping. Here each
batch goes to a worker process with a connection of its own to the same file; the node waits
on a pipe (no GIL held) and keeps serving. Past the deadline
(``MEMOTURN_STATEMENT_TIMEOUT_SECONDS``) the worker is killed: its transaction never
committed, the OS releases its locks, and the request fails with 400 ``statement-timeout``.

Contract with the caller (:meth:`memoturn.storage.database.Database.write`): it holds the branch's
write lock for the whole call and captures the WAL in the ``captured`` callback, which runs
after the batch committed and *before* the worker closes its connection: closing may
checkpoint and delete the WAL (libSQL does so even while the node's own connection is open),
so capture must have read it first. The WAL is SQLite's, so commits made here are captured
exactly like the node's own. After a kill the caller must not trust the local file
(the kill may have hit a commit half-way) and restores it from the store.

Workers are spawned on demand up to ``size`` and reused; a worker that died or was killed is
replaced by a fresh one on the next call.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from .. import errors as errs
from ..errors import BadRequest, MemoturnError, Unavailable


class StatementTimeout(BadRequest):
    type = "statement-timeout"


class WorkerLost(Exception):
    """The worker was killed or died mid-batch: the local file's state is unknown."""

    def __init__(self, error: MemoturnError) -> None:
        super().__init__(error.detail)
        self.error = error


def _serve(pipe: Any) -> None:  # runs in the worker process
    from .connection import connect
    from .execute import run_batch

    pipe.send("ready")
    while True:
        try:
            req = pipe.recv()
        except EOFError:
            return
        conn = None
        try:
            conn = connect(req["path"])
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                raise Unavailable(f"database is in journal mode {mode!r}, not WAL", type="capture-bypassed")
            conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
            conn.execute(f"PRAGMA cache_size=-{req['cache_bytes'] // 1024}")
            conn.execute("PRAGMA foreign_keys=ON")
            results = run_batch(
                conn,
                req["path"],
                req["statements"],
                transaction=req["transaction"],
                max_txn_bytes=req["max_txn_bytes"],
                max_result_bytes=req["max_result_bytes"],
                cache_bytes=req["cache_bytes"],
            )
            reply: tuple[Any, ...] = ("ok", results)
        except MemoturnError as exc:
            reply = ("error", type(exc).__name__, exc.type, exc.detail, exc.extra)
        except BaseException as exc:  # noqa: BLE001 - engine errors, and panics of the binding (PanicException)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            reply = ("error", "BadRequest", "sql-error", str(exc).splitlines()[0] if str(exc) else repr(exc), {})
        pipe.send(reply)
        # Closing the last writer connection may checkpoint and delete the WAL: only once the
        # node has captured what this batch committed (it says so with "close").
        try:
            pipe.recv()
        except EOFError:
            return
        finally:
            if conn is not None:
                conn.close()
        pipe.send("closed")


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), daemon=True, name="memoturn-sql")
        self.process.start()
        child.close()
        # Start-up (interpreter, imports) is not a batch's time: the deadline starts once it is ready.
        if not self.pipe.poll(60) or self.pipe.recv() != "ready":
            self.kill()
            raise Unavailable("an SQL worker did not start", type="sql-worker-died")

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.pipe.close()


class SqlWorkers:
    """A bounded pool of SQL worker processes; :meth:`run` is thread-safe."""

    def __init__(
        self, size: int, timeout: float, *, max_txn_bytes: int, max_result_bytes: int, cache_bytes: int = 1024 * 1024
    ) -> None:
        self.size, self.timeout = size, timeout
        self.limits = {"max_txn_bytes": max_txn_bytes, "max_result_bytes": max_result_bytes, "cache_bytes": cache_bytes}
        self._ctx = mp.get_context("spawn")
        self._idle: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._closed = False
        self.timeouts = 0

    def warm(self) -> None:
        """Start one worker ahead of the first request (a spawn takes ~0.2 s)."""
        w = _Worker(self._ctx)
        with self._lock:
            self._idle.append(w)

    def run(
        self,
        path: str,
        statements: list[tuple[str, Any]],
        *,
        transaction: bool,
        captured: Callable[[], None],
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Run a batch on the database file at ``path``; raise its error, or :class:`WorkerLost`.

        ``captured`` is called once the batch has committed (or failed) and before the worker
        closes its connection: the caller captures the WAL there (a close may checkpoint it).
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=timeout):
            raise Unavailable("every SQL worker is busy; retry", type="sql-workers-busy")
        try:
            with self._lock:
                if self._closed:
                    raise Unavailable("the node is stopping", type="stopping")
                worker = self._idle.pop() if self._idle else None
            if worker is None or not worker.process.is_alive():
                worker = _Worker(self._ctx)
            try:
                worker.pipe.send({"path": path, "statements": statements, "transaction": transaction, **self.limits})
                if not worker.pipe.poll(max(0.0, deadline - time.monotonic())):
                    worker.kill()
                    self.timeouts += 1
                    raise WorkerLost(
                        StatementTimeout(
                            f"the batch ran past its deadline of {timeout:g}s and was stopped; nothing of it was applied",
                            type="statement-timeout",
                        )
                    )
                reply = worker.pipe.recv()
            except (EOFError, OSError, BrokenPipeError):
                worker.kill()
                raise WorkerLost(
                    Unavailable(
                        "the SQL worker died running the batch; nothing of it was applied", type="sql-worker-died"
                    )
                ) from None
            try:
                captured()
            finally:
                try:
                    worker.pipe.send("close")
                    if not worker.pipe.poll(30) or worker.pipe.recv() != "closed":
                        raise EOFError
                except (EOFError, OSError, BrokenPipeError):
                    worker.kill()
                else:
                    with self._lock:
                        if self._closed:
                            worker.kill()
                        else:
                            self._idle.append(worker)
        finally:
            self._slots.release()
        if reply[0] == "ok":
            return cast(list[dict[str, Any]], reply[1])
        _, cls_name, type_, detail, extra = reply
        cls = getattr(errs, cls_name, None)
        if not (isinstance(cls, type) and issubclass(cls, MemoturnError)):
            cls = BadRequest
        raise cls(detail, type=type_, **extra)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for w in idle:
            w.kill()
