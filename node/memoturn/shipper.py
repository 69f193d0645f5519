"""Ship sealed segments to object storage and land them in the branch manifest.

One shipper per node, with a few worker threads. A database with unshipped segments is
queued once; a worker merges everything pending for it into one segment object
(``If-None-Match: *``, so nothing is ever overwritten), then CAS-appends it to the manifest
with the writer's epoch. Only then does ``shipped_txid`` advance and durable writers wake.

Pacing: a database starts a ship at most every ``ship_interval_seconds`` (default 0.1 s), so a
busy database's commits travel together: one segment PUT and one manifest CAS for all of
them, instead of two requests per commit. This is what bounds the object-store requests (and
the node's CPU spent making them) under write load; the price is up to one interval more of
standard-mode loss window. A durable writer waiting for its txid (``Database.wait_shipped``)
skips the pacing: its commit ships at once, with whatever else is pending (group commit).

Failures: a store outage sets :attr:`Shipper.store_down`, records the error on the
database (durable waiters fail fast with 503) and retries with exponential backoff; the
segments stay pending and ship in order when the store returns. A manifest CAS lost to a
newer epoch fences the database. A lost response is recognised on retry: the object that
already exists with the same bytes, or the manifest that already lists the segment, counts
as success.

Merges read the small segments they join from :mod:`~memoturn.recent_segments` (what this
node shipped lately) and from the store only for what fell out of it.

Snapshots ride along: when a branch has accumulated enough txids or bytes since its last
snapshot, the worker copies the file at head, uploads it, and adds it to the manifest in
the CAS that makes the head reach it; the manifest then keeps the newest ``keep_snapshots``
snapshots; once one falls out, so do the segments up to the oldest kept snapshot
(point-in-time restore reaches back to it).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
import time
from typing import TYPE_CHECKING

from . import store as st
from .errors import DataCorrupt, MemoturnError, NotFound, Unavailable
from .manifest import Fenced, Manifest, SegmentRef, SnapshotRef, load_manifest, swap_manifest
from .names import segment_key, snapshot_key
from .recent_segments import RecentSegments
from .segment import Segment, decode_segment, encode_segment, merge_segments
from .snapshot import encode_snapshot

if TYPE_CHECKING:
    from .database import Database
    from .node import Node

#: Segments at least this big are left as they are, and merging never makes a bigger one.
MERGED_SEGMENT_MAX_BYTES = 1 << 20
log = logging.getLogger("memoturn.shipper")


class Shipper:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        self.settings = node.settings
        self.metrics = node.metrics
        self.store_down = False
        self._cv = threading.Condition()
        self._ready: list[Database] = []
        self._queued: set[int] = set()
        self._delayed: list[tuple[float, int, Database]] = []
        self._seq = 0
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._backoff: dict[int, float] = {}
        self._paced: set[int] = set()  # databases waiting in _delayed for their interval
        self.recent = RecentSegments(max_item_bytes=MERGED_SEGMENT_MAX_BYTES)
        self.unshipped_txids = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.settings.ship_workers):
            t = threading.Thread(target=self._run, name=f"memoturn-ship-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    # -- queueing ------------------------------------------------------------------------

    def enqueue(self, db: Database, seg: Segment) -> None:
        """Called by the writer under the database lock, right after capture."""
        with db.ship_cond:
            db.pending.append(seg)
        n = seg.last_txid - seg.first_txid + 1
        with self._cv:
            self.unshipped_txids += n
            self.metrics.unshipped_txids.set(self.unshipped_txids)
        self.schedule(db)

    def schedule(self, db: Database, delay: float = 0.0, *, urgent: bool = False) -> None:
        """Queue ``db`` to ship: after ``delay`` (a retry backoff), else as soon as its pacing
        interval since the last ship allows, or at once when ``urgent`` (a durable waiter)."""
        with self._cv:
            now = time.monotonic()
            if delay <= 0 and not urgent:
                delay = db.last_ship_at + self.settings.ship_interval_seconds - now
                if delay > 0:
                    if id(db) in self._paced or id(db) in self._queued:
                        return  # already on its way
                    self._paced.add(id(db))
            if delay > 0:
                self._seq += 1
                heapq.heappush(self._delayed, (now + delay, self._seq, db))
            elif id(db) not in self._queued:
                self._queued.add(id(db))
                self._ready.append(db)
            self._cv.notify()

    def _next(self) -> Database | None:
        with self._cv:
            while not self._stop:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, db = heapq.heappop(self._delayed)
                    self._paced.discard(id(db))
                    if id(db) not in self._queued:
                        self._queued.add(id(db))
                        self._ready.append(db)
                if self._ready:
                    db = self._ready.pop(0)
                    self._queued.discard(id(db))
                    return db
                timeout = self._delayed[0][0] - now if self._delayed else None
                self._cv.wait(timeout)
            return None

    def _run(self) -> None:
        while (db := self._next()) is not None:
            try:
                more = self.ship(db)
            except Exception:  # noqa: BLE001 - a worker must survive anything
                log.exception("shipping %s failed", db.key)
                more = True
                self.schedule(db, delay=1.0)
                continue
            if more:
                self.schedule(db)

    # -- shipping ------------------------------------------------------------------------

    def ship(self, db: Database, *, snapshot: bool = True) -> bool:
        """Ship what is pending for ``db`` once; True if more work remains.

        ``snapshot=False`` when the caller holds the database lock (snapshots take it).
        """
        with db.ship_lock:
            with db.ship_cond:
                segs = list(db.pending)
            if segs:
                db.last_ship_at = time.monotonic()
            if db.fenced or not segs:
                self._backoff.pop(id(db), None)  # bounded by handles still failing to ship
                return False
            try:
                self._ship_segments(db, segs)
            except (Unavailable, st.StoreUnavailable) as exc:
                self._failed(db, exc)
                return False
            except DataCorrupt as exc:
                # The stored manifest fails verification: nothing can land until it is repaired.
                # Waiters fail with data-corrupt, the database refuses writes, segments stay pending.
                self._failed(db, exc, corrupt=True)
                return False
            except Fenced as exc:
                db.fence(str(exc))
                return False
            except NotFound as exc:
                db.fence(f"branch deleted: {exc.detail}")
                return False
            self._succeeded(db)
            if not snapshot:
                with db.ship_cond:
                    return bool(db.pending)
            try:
                self._maybe_snapshot(db)
                self._maybe_merge(db)
            except (Unavailable, st.StoreUnavailable, DataCorrupt) as exc:
                log.warning("compaction of %s deferred: %s", db.key, exc)
            except Fenced as exc:
                db.fence(str(exc))
                return False
            with db.ship_cond:
                return bool(db.pending)

    def _retention(self, db: Database) -> tuple[int, float]:
        p = db.manifest.policy
        return (
            p.keep_snapshots or self.settings.keep_snapshots,
            p.retention_seconds if p.retention_seconds is not None else self.settings.retention_seconds,
        )

    def _maybe_merge(self, db: Database) -> None:
        """Merge a branch's oldest run of small segments into one object (same txids, same chain).

        Only segments under :data:`MERGED_SEGMENT_MAX_BYTES` take part, and a merge stops before
        it would exceed that size: a merged segment is never re-read and re-written by the next
        merge, so the bytes a merge moves stay bounded (merging the ever-growing oldest segment
        again and again made shipping quadratic and stalled it for hundreds of milliseconds).
        Forks that name the old objects keep naming them (GC keeps what any manifest names).
        """
        limit = db.manifest.policy.merge_segments_over or self.settings.merge_segments_over
        segs = sorted((s for s in db.manifest.segments if s.until is None), key=lambda s: s.first_txid)
        small = [s for s in segs if s.size < MERGED_SEGMENT_MAX_BYTES]
        if len(small) <= limit:
            return
        run: list[SegmentRef] = []
        for ref in segs:
            fits = (
                ref.size < MERGED_SEGMENT_MAX_BYTES and sum(r.size for r in run) + ref.size <= MERGED_SEGMENT_MAX_BYTES
            )
            if run and (not fits or len(run) == limit or ref.first_txid != run[-1].last_txid + 1):
                if len(run) >= 2:
                    break
                run = []  # a lone small segment between big ones: look further on
            if fits:
                run.append(ref)
        if len(run) < 2:
            return
        parts = []
        for ref in run:
            data = self.recent.take(ref.key)
            if data is None:
                data, _ = self.store.get(ref.key)
                self.metrics.merge_segment_reads.inc()
            if hashlib.sha256(data).hexdigest() != ref.sha256:
                raise DataCorrupt(f"{ref.key} does not match its manifest checksum")
            parts.append(decode_segment(data, where=ref.key))
        merged = merge_segments(parts)
        merged.epoch, merged.timeline = db.epoch or merged.epoch, db.timeline
        data = encode_segment(merged)
        key = segment_key(db.name, db.branch, merged.first_txid, merged.last_txid, merged.epoch, merged.timeline)
        self.store.put(key, data, if_none_match=True)
        new_ref = SegmentRef(
            key=key,
            first_txid=merged.first_txid,
            last_txid=merged.last_txid,
            first_ts=merged.first_ts,
            last_ts=merged.last_ts,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            epoch=merged.epoch,
        )
        old = {r.key for r in run}

        def change(m: Manifest) -> Manifest:
            if not old <= {s.key for s in m.segments}:
                return m  # changed meanwhile (pruned by a snapshot): nothing to merge
            rest = [s for s in m.segments if s.key not in old]
            return m.model_copy(update={"segments": sorted([*rest, new_ref], key=lambda s: s.first_txid)})

        self._cas(
            db, change, landed=lambda m: any(s.key == key for s in m.segments) or not old <= {s.key for s in m.segments}
        )
        self.recent.add(key, data)  # small enough to be merged again later
        self.metrics.segments_merged.inc(len(run))

    def compact(self, db: Database, timeout: float = 60.0) -> None:
        """Ship everything pending, then write a snapshot at the head and land it now."""
        deadline = time.monotonic() + timeout
        while db.pending and time.monotonic() < deadline:
            self.ship(db)
        while time.monotonic() < deadline:
            with db.ship_lock:
                if db.pending:
                    raise Unavailable(f"{db.key}: could not ship pending segments before compaction")
                if self._maybe_snapshot(db, force=True):
                    return
            time.sleep(0.01)  # the branch was busy (its lock held by a writer): try again
        raise Unavailable(f"{db.key}: busy; no snapshot could be taken", type="busy")

    def ship_all(self, timeout: float) -> bool:
        """Ship synchronously until nothing is pending (shutdown); True when done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [db for db in self.node.hot_databases() if db.pending and not db.fenced]
            if not busy:
                return True
            for db in busy:
                self.ship(db)
            if any(db.pending for db in busy):
                time.sleep(0.05)
        return False

    def _ship_segments(self, db: Database, segs: list[Segment]) -> None:
        seg = segs[0] if len(segs) == 1 else merge_segments(segs)
        data = encode_segment(seg)
        digest = hashlib.sha256(data).hexdigest()
        key = segment_key(db.name, db.branch, seg.first_txid, seg.last_txid, seg.epoch, seg.timeline)
        t0 = time.perf_counter()
        try:
            self.store.put(key, data, if_none_match=True)
        except st.ConditionFailed:
            existing, _ = self.store.get(key)
            if hashlib.sha256(existing).hexdigest() != digest:
                raise Fenced(f"segment {key} exists with other content") from None
        ref = SegmentRef(
            key=key,
            first_txid=seg.first_txid,
            last_txid=seg.last_txid,
            first_ts=seg.first_ts,
            last_ts=seg.last_ts,
            size=len(data),
            sha256=digest,
            epoch=seg.epoch,
        )

        def change(m: Manifest) -> Manifest:
            if m.head_txid != seg.first_txid - 1:
                raise Fenced(f"{db.key}: manifest head {m.head_txid} does not precede txid {seg.first_txid}")
            new = m.model_copy(
                update={
                    "segments": [*m.segments, ref],
                    "head_txid": seg.last_txid,
                    "head_ts": seg.last_ts,
                    "page_size": seg.page_size,
                }
            )
            snap = db.pending_snapshot
            if snap is not None and snap.txid <= seg.last_txid:
                # Prune against the manifest that already lists the new segment (found by the
                # GC property test: pruning the old list dropped the segment just shipped).
                new = new.model_copy(update=_with_snapshot(new, snap, *self._retention(db)))
            return new

        self._cas(db, change, landed=lambda m: any(s.key == key for s in m.segments))
        self.recent.add(key, data)
        if db.pending_snapshot is not None and db.pending_snapshot.txid <= seg.last_txid:
            db.pending_snapshot = None
        self.metrics.ship_seconds.observe(time.perf_counter() - t0)
        self.metrics.ship_lag_seconds.observe(max(0.0, time.time() - seg.first_ts))
        self.node.replicator.offer(db.name, db.branch, data, seg.first_txid, seg.last_txid, db.head_txid)
        self.metrics.segments_shipped.inc()
        self.metrics.bytes_shipped.inc(len(data))
        with db.ship_cond:
            db.pending = [s for s in db.pending if s.first_txid > seg.last_txid]
            db.shipped_txid = seg.last_txid
            db.ship_cond.notify_all()
        n = seg.last_txid - seg.first_txid + 1
        with self._cv:
            self.unshipped_txids -= n
            self.metrics.unshipped_txids.set(self.unshipped_txids)

    def _cas(self, db: Database, change, landed) -> None:
        """Apply ``change`` to the manifest by CAS, recognising an earlier lost response."""
        for _ in range(5):
            manifest, etag = db.manifest, db.etag
            if manifest.epoch != db.epoch:
                raise Fenced(f"{db.key}: manifest epoch {manifest.epoch} is not ours ({db.epoch})")
            try:
                new, new_etag = swap_manifest(self.store, change(manifest), etag)
            except st.ConditionFailed:
                current, cur_etag = load_manifest(self.store, db.name, db.branch)
                if current.epoch != db.epoch:
                    raise Fenced(f"{db.key}: now owned by epoch {current.epoch}") from None
                with db.ship_cond:
                    db.manifest, db.etag = current, cur_etag
                if landed(current):
                    return
                continue
            with db.ship_cond:
                db.manifest, db.etag = new, new_etag
            return
        raise Unavailable(f"{db.key}: manifest CAS kept failing")

    def _maybe_snapshot(self, db: Database, *, force: bool = False) -> bool:
        """Take a snapshot when one is due (or forced); True when one was taken."""
        s = self.settings
        if db.pending_snapshot is not None:
            return False
        every = db.manifest.policy.snapshot_every_txids or s.snapshot_every_txids
        due = db.txids_since_snapshot >= every or db.bytes_since_snapshot >= s.snapshot_every_bytes
        if not (due or force):
            return False
        snap = db.take_snapshot()
        if snap is None:
            return False
        data = encode_snapshot(snap)
        key = snapshot_key(db.name, db.branch, snap.txid, snap.epoch, db.timeline)
        try:
            self.store.put(key, data, if_none_match=True)
        except st.ConditionFailed:
            pass  # same epoch and txid: the same bytes from an earlier attempt
        ref = SnapshotRef(
            key=key,
            txid=snap.txid,
            ts=snap.ts,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            epoch=snap.epoch,
        )
        db.txids_since_snapshot = 0
        db.bytes_since_snapshot = 0
        self.metrics.snapshots_written.inc()
        if db.manifest.head_txid >= ref.txid:
            self._cas(
                db,
                lambda m: m.model_copy(update=_with_snapshot(m, ref, *self._retention(db))),
                landed=lambda m: any(x.key == key for x in m.snapshots),
            )
        else:
            db.pending_snapshot = ref
        return True

    def _failed(self, db: Database, exc: Exception, *, corrupt: bool = False) -> None:
        if not corrupt:
            self.store_down = True
        self.metrics.ship_errors.inc()
        detail = exc.detail if isinstance(exc, MemoturnError) else str(exc)
        with db.ship_cond:
            db.ship_error = detail
            db.corrupt = detail if corrupt else None
            db.ship_cond.notify_all()
        delay = min(5.0, self._backoff.get(id(db), 0.05) * 2)
        self._backoff[id(db)] = delay
        log.warning("shipping %s failed (%s); retrying in %.2fs", db.key, detail, delay)
        self.schedule(db, delay=delay)

    def _succeeded(self, db: Database) -> None:
        self.store_down = False
        self._backoff.pop(id(db), None)
        with db.ship_cond:
            db.ship_error = None
            db.corrupt = None


def _with_snapshot(m: Manifest, ref: SnapshotRef, keep: int, retention_seconds: float = 0.0) -> dict:
    """Manifest fields after adding ``ref``: the newest ``keep`` snapshots, every snapshot younger
    than ``retention_seconds``, the segments after the oldest kept one, and whatever every
    checkpoint still needs (checkpoints pin their history)."""
    every = sorted([*[s for s in m.snapshots if s.key != ref.key], ref], key=lambda s: s.txid)
    newest = every[-max(1, keep) :]
    young = [s for s in every if retention_seconds and s.ts >= time.time() - retention_seconds]
    snaps = sorted({s.key: s for s in [*young, *newest]}.values(), key=lambda s: s.txid)
    floor = snaps[0].txid
    for pin in m.checkpoints.values():
        if pin < floor:
            older = [s for s in every if s.txid <= pin]
            if older:
                snaps = sorted({s.key: s for s in [older[-1], *snaps]}.values(), key=lambda s: s.txid)
                floor = min(floor, older[-1].txid)
            else:
                floor = 0
    if len(snaps) == len(every) or floor == 0:
        return {"snapshots": every if floor == 0 else snaps}
    return {"snapshots": snaps, "segments": [s for s in m.segments if s.last_txid > floor]}
