"""One open branch of one database: a libSQL handle whose every commit becomes a segment.

Contract:

* Writes are serialised per branch by :attr:`Database.lock`; different branches proceed in
  parallel. Each write runs in ``BEGIN IMMEDIATE … COMMIT``; right after the commit, still
  under the lock, the new WAL frames are read and verified (:mod:`memoturn.storage.wal`), each
  committed transaction gets the next txid, and they are sealed into a segment that is
  appended to the branch's log (:mod:`memoturn.storage.branch_log`, which owns everything about
  replication) and queued with the shipper. Automatic checkpointing is off: the node checkpoints only after
  capturing, so no committed page can reach the database file uncaptured.
* The first write takes ownership: a new epoch from the lease table, then a manifest CAS
  carrying it (the fencing write). A branch whose manifest turns out to carry a newer epoch
  is *fenced*: every later call raises :class:`NotOwner` and the node drops the handle.
* ``durable`` writes return only once their txid is in the manifest in object storage.
  When the store is known to be down they fail fast with :class:`Unavailable` before
  committing anything.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import clock
from ..config import Settings
from ..data.kv_cache import KvReadCache
from ..data.schema import BOOTSTRAP
from ..errors import DataCorrupt, NotFound, NotOwner, PreconditionFailed, Unavailable
from ..metrics import NodeMetrics
from ..sql.worker import WorkerLost
from . import store as st
from .branch_log import BranchLog
from .leases import LeaseTable
from .local_files import connect, drop_local_files, sidecar_path
from .manifest import Manifest, load_manifest
from .restore import restore
from .segment import Segment, Txn
from .shipper import Shipper
from .snapshot import Snapshot
from .wal import WalCorrupt, WalReader

T = TypeVar("T")
log = logging.getLogger("memoturn.database")


class Closed(Exception):
    """The handle was closed (tiered down or dropped) under the caller; reopen and retry."""


@dataclass(frozen=True)
class Services:
    """What an open branch needs from its node (and never the node itself)."""

    store: st.ObjectStore
    leases: LeaseTable
    settings: Settings
    metrics: NodeMetrics
    shipper: Shipper


class Database:
    """An open (hot) branch: its connection and WAL capture. Built by :class:`memoturn.server.node.Node`."""

    def __init__(self, services: Services, name: str, branch: str, path: str, manifest: Manifest, etag: str) -> None:
        self.services = services
        self.store = services.store
        self.leases = services.leases
        self.settings = services.settings
        self.metrics = services.metrics
        self.shipper = services.shipper
        self.name = name
        self.branch = branch
        self.key = f"{name}/{branch}"
        self.path = path
        self.lock = threading.Lock()
        self.log = BranchLog(
            self.store,
            name,
            branch,
            manifest,
            etag,
            settings=self.settings,
            metrics=self.metrics,
            take_snapshot=self.take_snapshot,
        )
        self.lease_generation = 0
        self.bootstrapped = False
        self.head_txid = manifest.head_txid
        self.head_ts = manifest.head_ts
        self.closed = False
        self.last_access = time.monotonic()
        # KV read cache: key -> (item, txid read at). An entry is valid only while the head is
        # still that txid, so any commit invalidates it without bookkeeping.
        self.kv_cache = KvReadCache()
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass
        self.conn = connect(path, self.settings.cache_kib_per_db)
        self.wal = WalReader(path + "-wal")
        self.stamp = self._file_stamp()  # the file as the node last left it (see _verify_captured)

    # -- what the branch log owns, read here -----------------------------------------------

    @property
    def manifest(self) -> Manifest:
        return self.log.manifest

    @property
    def epoch(self) -> int | None:
        return self.log.epoch

    @property
    def fenced(self) -> str | None:
        return self.log.fenced

    @property
    def shipped_txid(self) -> int:
        return self.log.shipped_txid

    @property
    def has_pending(self) -> bool:
        return self.log.has_pending

    # -- public operations ---------------------------------------------------------------

    def read(self, fn: Callable[[Any], T]) -> tuple[T, int]:
        """Run ``fn(conn)`` on a consistent state; return its result and the txid it saw.

        With a shared lease table a primary read needs ownership too (so it is strong).
        """
        with self.lock:
            self._check_open()
            if self.leases.shared:
                self._check_lease()
                if not self.owned:
                    self._acquire()
            self._ensure_bootstrapped()
            self.last_access = time.monotonic()
            return fn(self.conn), self.head_txid

    def read_nowait(self, fn: Callable[[Any], T]) -> tuple[T, int] | None:
        """:meth:`read`, if it can run at once on the caller's thread (the event loop's): the
        lock is free and the branch open, owned, bootstrapped and not expired, so nothing waits
        and nothing but the local file is touched. Else None: the caller reads in a thread."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            expires = self.manifest.expires_at
            if (
                self.fenced
                or self.closed
                or not self.bootstrapped
                or (expires is not None and expires <= clock.now())
                or (self.leases.shared and not (self.owned and self.leases.healthy()))
            ):
                return None
            self.last_access = time.monotonic()
            return fn(self.conn), self.head_txid
        finally:
            self.lock.release()

    @property
    def owned(self) -> bool:
        return self.epoch is not None and self.lease_generation == self.leases.generation

    def _check_lease(self) -> None:
        if not self.leases.healthy():
            raise Unavailable(
                "this node cannot renew its writer lease; it refuses requests until it can", type="lease-lost"
            )

    def write(
        self, fn: Callable[..., T], *, durable: bool, transaction: bool = True, external: bool = False
    ) -> tuple[T, int]:
        """Run ``fn(conn)`` in one transaction, capture it, and return ``(result, txid)``.

        With ``transaction=False`` ``fn`` runs in autocommit mode; with ``external=True`` it
        gets the file's path and a capture callback instead and commits through a connection of
        its own (user SQL in a worker process, :mod:`memoturn.sql.worker`). Every commit it makes is captured all
        the same, also when ``fn`` fails half-way. The answer is given only if capture saw
        every change to the file (else the handle is rebuilt from the store and the request
        fails) and only under the ownership the write began under (DESIGN 12, 13).
        """
        with self.lock:
            self._check_open()
            self._check_lease()
            self._check_shippable()
            if durable and self.shipper.store_down:
                raise Unavailable("object store unavailable: durable writes are refused", type="store-unavailable")
            if not self.owned:
                self._acquire()
            self._ensure_bootstrapped()
            generation = self.lease_generation
            self.last_access = time.monotonic()
            conn = self.conn
            try:
                if external:
                    self._hand_over()
                    try:
                        result = fn(self.path, self._capture_before_close)
                    except WorkerLost:
                        raise
                    except BaseException:
                        self._take_back()
                        raise
                    self._take_back()
                elif transaction:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(conn)
                        conn.execute("COMMIT")
                    except BaseException as exc:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        if isinstance(exc, ValueError) and "disk is full" in str(exc):
                            raise Unavailable(
                                f"{self.key}: the node's local disk is full; nothing was applied", type="disk-full"
                            ) from None
                        raise
                else:
                    try:
                        result = fn(conn)
                    finally:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
            except WorkerLost as exc:
                # Killed mid-batch (deadline): it may have died inside a commit, so the local
                # file is not to be trusted. What capture saw ships; the file comes back from the store.
                self._rebuild(f"SQL worker lost: {exc.error.detail}")
                raise exc.error from None
            except BaseException:
                if not self.closed:
                    self._capture()  # autocommitted statements before the failure are real commits
                    self._verify_captured()
                raise
            txid = self._capture()
            self._verify_captured()
        if durable:
            self.wait_shipped(txid)
        self._check_ack(generation, txid)
        return result, txid

    def _capture_before_close(self) -> None:
        """Capture what another connection committed while it is still open (see sqlworker)."""
        self._capture()
        self._verify_captured(tail=False)  # our connection is closed: a tail is checkpointed after _take_back

    def _hand_over(self) -> None:
        """Close our connection so that the worker's is the only one while it runs.

        libSQL checkpoints and deletes the WAL when a connection closes and it finds no other
        (it does so even while another connection of another process is open, which corrupts
        that one's view): with one connection at a time that close is always safe. Our close
        checkpoints frames capture already read; the file is re-stamped after it.
        """
        self._close_local()
        self.stamp = self._file_stamp()

    def _take_back(self) -> None:
        """Reopen our connection after the worker closed its own (which may have checkpointed
        the frames captured just before it): re-stamp; the WAL reader follows a new WAL by its salts."""
        if self.closed:
            return
        self.stamp = self._file_stamp()
        self.conn = connect(self.path, self.settings.cache_kib_per_db)

    def _check_ack(self, generation: int, txid: int) -> None:
        """Acknowledge only under the ownership the write began under, still valid now.

        A node paused past its lease (SIGSTOP, a long GC) comes back with a new lease and a
        new generation; whatever it committed under the old one may already be void (a new
        owner may have written the same txid), so it is never acknowledged.
        """
        leases = self.leases
        if not leases.shared:
            return
        if (
            generation != leases.generation
            or self.lease_generation != generation
            or not leases.healthy()
            or self.fenced
        ):
            raise Unavailable(
                f"ownership of {self.key} lapsed while committing txid {txid}; outcome unknown",
                type="lease-lost",
                txid=txid,
            )

    def _check_shippable(self) -> None:
        """Refuse writes that could never ship: the stored manifest failed verification."""
        if self.log.corrupt:
            raise DataCorrupt(
                f"{self.key}: {self.log.corrupt}; writes are refused until it is repaired", type="data-corrupt"
            )

    def _file_stamp(self) -> tuple[int, int, int]:
        st_ = os.stat(self.path)
        return st_.st_ino, st_.st_size, st_.st_mtime_ns

    def _verify_captured(self, *, tail: bool = True) -> None:
        """The database file changes only in the node's own checkpoints (capture sees the rest).

        Anything else (a journal-mode switch, a checkpoint the node did not make, a commit that
        bypassed the WAL) means capture missed commits: the request fails and the local copy
        is rebuilt from the store.
        """
        if self.closed:
            return
        try:
            same = self._file_stamp() == self.stamp
        except FileNotFoundError:
            same = False
        if not same:
            self.metrics.capture_bypassed.inc()
            self._rebuild("the database file changed outside WAL capture")
            raise DataCorrupt(
                f"{self.key}: a change bypassed WAL capture and was discarded; "
                "the branch was restored from object storage",
                type="capture-bypassed",
            )
        if tail and self.wal.has_tail():
            self._checkpoint()  # frames of a rolled-back or killed transaction: never read them

    def _rebuild(self, reason: str) -> None:
        """Ship what capture saw, then drop the local copy: the next access restores it."""
        log.warning("%s: %s; rebuilding the local copy from object storage", self.key, reason)
        if self.log.has_pending:
            self.shipper.ship(self.log, snapshot=False)
        self.closed = True
        try:
            self._close_local()
        finally:
            drop_local_files(self.path)  # pending segments live in the log and still ship
            self.log.wake()

    def _ensure_bootstrapped(self) -> None:
        """Create the reserved schema if this copy lacks it (under the lock; a write, so owned)."""
        if self.bootstrapped:
            return
        missing = (
            self.conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = '__memoturn_kv'").fetchone()[0] == 0
        )
        if missing:
            if not self.owned:
                self._check_lease()
                self._acquire()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in BOOTSTRAP:
                    self.conn.execute(statement)
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self._capture()
        self.bootstrapped = True

    def wait_shipped(self, txid: int, timeout: float | None = None) -> None:
        """Block until ``txid`` is in the stored manifest; raise if that cannot happen now."""
        timeout = self.settings.durable_timeout_seconds if timeout is None else timeout
        if self.log.shipped_txid < txid:
            self.shipper.schedule(self.log, urgent=True)  # somebody waits: no pacing
        self.log.wait_shipped(txid, timeout)

    def wait_for_txid(self, txid: int, timeout: float) -> bool:
        """Wait (bounded) until the local head reaches ``txid``."""
        deadline = time.monotonic() + timeout
        while self.head_txid < txid:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def take_snapshot(self) -> Snapshot | None:
        """Checkpoint and copy the file at the current head (under the write lock).

        Called by the shipper while it holds the log's ``ship_lock``; writers that ship
        synchronously hold ``lock`` and then take ``ship_lock``. To keep one lock order, this never waits
        for ``lock``: when the branch is busy the snapshot is simply taken on a later round.
        """
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if self.closed or self.epoch is None or self.head_txid == 0:
                return None
            self._checkpoint()
            with open(self.path, "rb") as f:
                data = f.read()
            return Snapshot(
                database=self.name,
                branch=self.branch,
                epoch=self.epoch,
                txid=self.head_txid,
                ts=self.head_ts or time.time(),
                page_size=self.wal.page_size or self.log.manifest.page_size,
                data=data,
            )
        finally:
            self.lock.release()

    def close(self, *, force: bool = False, release: bool = True) -> bool:
        """Checkpoint and close, leaving a warm file. Refuses while segments are unshipped.

        ``release=False`` keeps the ownership key (the caller revokes the whole lease).
        """
        with self.lock:
            if self.closed:
                return True
            if self.log.has_pending and not force:
                return False
            clean = not self.log.has_pending and not self.log.fenced
            try:
                if clean:
                    self._checkpoint()
            finally:
                self.closed = True
                self._close_local()
            if clean:
                with open(sidecar_path(self.path), "w") as f:
                    json.dump({"generation": self.log.manifest.generation, "head_txid": self.head_txid}, f)
            else:
                drop_local_files(self.path)
        if self.epoch is not None and release:
            self.leases.release(self.key, self.settings.node_id)
        self.log.wake()
        return True

    def fence(self, reason: str) -> None:
        """Stop serving this branch at once: a newer epoch owns it."""
        self.log.fence(reason)

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.fenced:
            raise NotOwner(f"{self.key}: {self.fenced}")
        if self.closed:
            raise Closed(self.key)
        expires = self.manifest.expires_at
        if expires is not None and expires <= clock.now():
            raise NotFound(f"branch {self.branch!r} of {self.name!r} has expired", type="branch-expired")

    def reset_to_manifest(self) -> None:
        """Rebuild the local file from the stored manifest (after a rewind), under the lock."""
        self._restore_local(self.log.manifest)
        self.kv_cache.clear()

    def _close_local(self) -> None:
        """Close the connection and the WAL reader (closing them again does nothing)."""
        self.conn.close()
        self.wal.close()

    def _restore_local(self, manifest: Manifest) -> None:
        """Make the local copy ``manifest``'s state, reopened, and follow it (under the lock; a
        snapshot taken on the old timeline never lands)."""
        self._close_local()
        restore(self.store, manifest, self.path)
        self.conn = connect(self.path, self.settings.cache_kib_per_db)
        self.wal = WalReader(self.path + "-wal")
        self.stamp = self._file_stamp()
        self.head_txid = manifest.head_txid
        self.head_ts = manifest.head_ts
        self.log.adopt(manifest)
        self.bootstrapped = False

    def _acquire(self) -> None:
        """Become the writer: new epoch, then the fencing manifest CAS."""
        store = self.store
        if self.log.has_pending:
            # Segments committed under the previous ownership ship first (their CAS still
            # succeeds if nobody took over meanwhile, and fences us if somebody did).
            self.shipper.ship(self.log, snapshot=False)
            if self.log.fenced:
                raise NotOwner(f"{self.key}: {self.log.fenced}")
            if self.log.has_pending:
                raise Unavailable(
                    f"{self.key}: unshipped segments from a previous lease; retry", type="store-unavailable"
                )
        manifest, etag = load_manifest(store, self.name, self.branch)
        if manifest.generation != self.log.manifest.generation or manifest.head_txid != self.head_txid:
            # Someone else wrote since this copy was restored: start again from the store.
            self._restore_local(manifest)
        generation = self.leases.generation
        me = self.settings.node_id
        epoch = self.leases.acquire(self.key, me, at_least=manifest.epoch + 1)
        self.log.take_ownership(manifest, etag, epoch, me)
        self.lease_generation = generation
        self.metrics.ownership_changes.inc()
        if manifest.owner not in (None, me):
            self.metrics.failovers.inc()

    def _capture(self) -> int:
        try:
            commits = self.wal.read_commits()
        except WalCorrupt as exc:
            self.fence(f"WAL verification failed: {exc}")
            self.closed = True
            self._close_local()
            drop_local_files(self.path)
            raise DataCorrupt(str(exc), type="wal-corrupt") from None
        if not commits:
            return self.head_txid
        txns = []
        for commit in commits:
            self.head_txid += 1
            self.head_ts = max(time.time(), self.head_ts or 0.0)
            txns.append(Txn(self.head_txid, self.head_ts, commit.db_pages, commit.pages))
        assert self.epoch is not None
        self.metrics.commits.inc(len(txns))
        seg = Segment(self.name, self.branch, self.epoch, self.wal.page_size, txns, self.log.timeline)
        self.shipper.enqueue(self.log, seg)
        if self.wal.wal_bytes >= self.settings.wal_checkpoint_bytes:
            self._checkpoint()
        return self.head_txid

    def _checkpoint(self) -> None:
        busy, _log, _done = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise PreconditionFailed(f"{self.key}: checkpoint was blocked")
        self.wal.reset()
        self.stamp = self._file_stamp()
