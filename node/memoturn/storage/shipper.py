"""Schedule shipping: which branch log ships next, when, on which worker thread, and after a failure.

One shipper per node, with a few worker threads; the shipping itself (segment PUT, manifest
CAS) is the branch log's (:mod:`memoturn.storage.branch_log`), snapshots are :mod:`memoturn.storage.snapshotting`'s,
merges :mod:`memoturn.storage.compaction`'s. A log with unshipped segments is queued once; a worker
ships everything pending for it as one segment object. Only then does ``shipped_txid``
advance and durable writers wake.

Pacing: a branch starts a ship at most every ``ship_interval_seconds`` (default 0.1 s), so a
busy branch's commits travel together: one segment PUT and one manifest CAS for all of
them, instead of two requests per commit. This is what bounds the object-store requests (and
the node's CPU spent making them) under write load; the price is up to one interval more of
standard-mode loss window. A durable writer waiting for its txid skips the pacing
(``urgent``): its commit ships at once, with whatever else is pending (group commit).

Failures: a store outage sets :attr:`Shipper.store_down`, records the error on the log
(durable waiters fail fast with 503) and retries with exponential backoff
(:mod:`memoturn.backoff`); the segments stay pending and ship in order when the store
returns. A manifest CAS lost to a newer epoch fences the log.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import weakref
from collections.abc import Callable

from ..backoff import next_delay
from ..config import Settings
from ..errors import DataCorrupt, MemoturnError, NotFound, Unavailable
from ..metrics import NodeMetrics
from . import store as st
from .branch_log import BranchLog, Shipped
from .compaction import MERGED_SEGMENT_MAX_BYTES, maybe_merge
from .manifest import Fenced
from .recent_segments import RecentSegments
from .segment import Segment
from .snapshotting import maybe_snapshot

log = logging.getLogger("memoturn.shipper")

#: Called after every successful ship (the replicator streams the segment to replicas).
OnShipped = Callable[[BranchLog, Shipped], None]


class Shipper:
    def __init__(
        self, store: st.ObjectStore, settings: Settings, metrics: NodeMetrics, *, on_shipped: OnShipped | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.on_shipped = on_shipped
        self.store_down = False
        self._cv = threading.Condition()
        self._ready: list[BranchLog] = []
        self._queued: set[int] = set()
        self._delayed: list[tuple[float, int, BranchLog]] = []
        self._seq = 0
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._backoff: dict[int, float] = {}
        self._paced: set[int] = set()  # logs waiting in _delayed for their interval
        self._logs: weakref.WeakSet[BranchLog] = weakref.WeakSet()  # every log that has appended
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

    def enqueue(self, blog: BranchLog, seg: Segment) -> None:
        """Append a sealed segment to its log and queue the log (the writer, under its lock)."""
        blog.append(seg)
        n = seg.last_txid - seg.first_txid + 1
        with self._cv:
            self._logs.add(blog)
            self.unshipped_txids += n
            self.metrics.unshipped_txids.set(self.unshipped_txids)
        self.schedule(blog)

    def schedule(self, blog: BranchLog, delay: float = 0.0, *, urgent: bool = False) -> None:
        """Queue ``blog`` to ship: after ``delay`` (a retry backoff), else as soon as its pacing
        interval since the last ship allows, or at once when ``urgent`` (a durable waiter)."""
        with self._cv:
            now = time.monotonic()
            if delay <= 0 and not urgent:
                delay = blog.last_ship_at + self.settings.ship_interval_seconds - now
                if delay > 0:
                    if id(blog) in self._paced or id(blog) in self._queued:
                        return  # already on its way
                    self._paced.add(id(blog))
            if delay > 0:
                self._seq += 1
                heapq.heappush(self._delayed, (now + delay, self._seq, blog))
            elif id(blog) not in self._queued:
                self._queued.add(id(blog))
                self._ready.append(blog)
            self._cv.notify()

    def _next(self) -> BranchLog | None:
        with self._cv:
            while not self._stop:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, blog = heapq.heappop(self._delayed)
                    self._paced.discard(id(blog))
                    if id(blog) not in self._queued:
                        self._queued.add(id(blog))
                        self._ready.append(blog)
                if self._ready:
                    blog = self._ready.pop(0)
                    self._queued.discard(id(blog))
                    return blog
                timeout = self._delayed[0][0] - now if self._delayed else None
                self._cv.wait(timeout)
            return None

    def _run(self) -> None:
        while (blog := self._next()) is not None:
            try:
                more = self.ship(blog)
            except Exception:  # noqa: BLE001 - a worker must survive anything
                log.exception("shipping %s failed", blog.key)
                self.schedule(blog, delay=1.0)
                continue
            if more:
                self.schedule(blog)

    # -- shipping ------------------------------------------------------------------------

    def ship(self, blog: BranchLog, *, snapshot: bool = True) -> bool:
        """Ship what is pending for ``blog`` once; True if more work remains.

        ``snapshot=False`` when the caller holds the database's write lock (snapshots take it).
        """
        with blog.ship_lock:
            segs = blog.pending_segments()
            if segs:
                blog.last_ship_at = time.monotonic()
            if blog.fenced or not segs:
                self._backoff.pop(id(blog), None)  # bounded by logs still failing to ship
                return False
            try:
                self._ship_segments(blog, segs)
            except (Unavailable, st.StoreUnavailable) as exc:
                self._failed(blog, exc)
                return False
            except DataCorrupt as exc:
                # The stored manifest fails verification: nothing can land until it is repaired.
                # Waiters fail with data-corrupt, the database refuses writes, segments stay pending.
                self._failed(blog, exc, corrupt=True)
                return False
            except Fenced as exc:
                blog.fence(str(exc))
                return False
            except NotFound as exc:
                blog.fence(f"branch deleted: {exc.detail}")
                return False
            self._succeeded(blog)
            if not snapshot:
                return blog.has_pending
            try:
                maybe_snapshot(blog, blog.take_snapshot, self.settings, self.metrics)
                maybe_merge(blog, self.recent, self.settings, self.metrics)
            except (Unavailable, st.StoreUnavailable, DataCorrupt) as exc:
                log.warning("compaction of %s deferred: %s", blog.key, exc)
            except Fenced as exc:
                blog.fence(str(exc))
                return False
            return blog.has_pending

    def compact(self, blog: BranchLog, timeout: float = 60.0) -> None:
        """Ship everything pending, then write a snapshot at the head and land it now."""
        deadline = time.monotonic() + timeout
        while blog.has_pending and time.monotonic() < deadline:
            self.ship(blog)
        while time.monotonic() < deadline:
            with blog.ship_lock:
                if blog.has_pending:
                    raise Unavailable(f"{blog.key}: could not ship pending segments before compaction")
                if maybe_snapshot(blog, blog.take_snapshot, self.settings, self.metrics, force=True):
                    return
            time.sleep(0.01)  # the branch was busy (its lock held by a writer): try again
        raise Unavailable(f"{blog.key}: busy; no snapshot could be taken", type="busy")

    def ship_all(self, timeout: float) -> bool:
        """Ship synchronously until nothing is pending (shutdown); True when done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cv:
                busy = [b for b in self._logs if b.has_pending and not b.fenced]
            if not busy:
                return True
            for blog in busy:
                self.ship(blog)
            if any(b.has_pending for b in busy):
                time.sleep(0.05)
        return False

    def _ship_segments(self, blog: BranchLog, segs: list[Segment]) -> None:
        t0 = time.perf_counter()
        shipped = blog.ship(segs)
        self.recent.add(shipped.key, shipped.data)
        self.metrics.ship_seconds.observe(time.perf_counter() - t0)
        self.metrics.ship_lag_seconds.observe(max(0.0, time.time() - shipped.first_ts))
        if self.on_shipped is not None:
            self.on_shipped(blog, shipped)
        self.metrics.segments_shipped.inc()
        self.metrics.bytes_shipped.inc(len(shipped.data))
        with self._cv:
            self.unshipped_txids -= shipped.txids
            self.metrics.unshipped_txids.set(self.unshipped_txids)

    def store_reachable(self) -> None:
        """A probe reached the store: durable writes are accepted again (a failing ship sets
        :attr:`store_down` back). Without it the flag waited for a successful ship, which never
        came when the log that failed had nothing left to ship."""
        self.store_down = False

    def _failed(self, blog: BranchLog, exc: Exception, *, corrupt: bool = False) -> None:
        if not corrupt:
            self.store_down = True
        self.metrics.ship_errors.inc()
        detail = exc.detail if isinstance(exc, MemoturnError) else str(exc)
        blog.failed(detail, corrupt=corrupt)
        delay = self._backoff[id(blog)] = next_delay(self._backoff.get(id(blog)), first=0.1, cap=5.0)
        log.warning("shipping %s failed (%s); retrying in %.2fs", blog.key, detail, delay)
        self.schedule(blog, delay=delay)

    def _succeeded(self, blog: BranchLog) -> None:
        self.store_down = False
        self._backoff.pop(id(blog), None)
        blog.succeeded()
