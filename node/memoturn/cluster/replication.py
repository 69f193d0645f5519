"""Read replicas: the owner streams shipped segments; replicas apply them on an unbroken chain.

Owner side, :class:`Replicator`: after a segment has landed in the manifest (so a replica
never holds anything object storage does not), the shipper offers its sealed bytes; a
worker POSTs them to the ``replicas`` nodes that rendezvous hashing ranks after the owner.
Streaming is best effort: a full queue or an unreachable replica drops the segment, and
the replica catches up from object storage.

Replica side, :class:`ReplicaSet`: a replica copy is a read-only file of its own. A segment
is applied only if its first txid is exactly the copy's head + 1 (pages written in place
with the handle closed, under the copy's lock, so a reader sees the old or the new state,
never a mix). A segment that leaves a gap is never applied: the copy is restored from object
storage instead. Reads on a replica carry the copy's txid; ``Memoturn-Min-Txid`` waits a
bounded time for the copy to catch up and otherwise answers ``412`` (the gateway then asks
the primary). Copies are kept in an LRU bounded by ``max_hot``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from ..config import Settings
from ..errors import BadRequest, DataCorrupt, PreconditionFailed
from ..metrics import NodeMetrics
from ..storage import store as st
from ..storage.local_files import connect, drop_local_files, restore_into
from ..storage.manifest import load_manifest
from ..storage.segment import SegmentCorrupt, decode_segment
from ..tls import client_context
from .placement import Placement

T = TypeVar("T")
log = logging.getLogger("memoturn.replication")


class Replicator:
    """Owner side: stream shipped segments to replica nodes, best effort."""

    def __init__(
        self,
        settings: Settings,
        metrics: NodeMetrics,
        placement: Callable[[], Placement | None],
        *,
        queue_size: int = 10_000,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.placement = placement  # set once the node has joined its cluster
        self._queue: queue.Queue[tuple[str, str, bytes, int, int, int] | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self._tls_name: dict[str, str] = {}
        #: Test hook: a predicate on (db, branch, first_txid) that drops the stream on purpose.
        self.drop: Callable[[str, str, int], bool] | None = None

    def start(self) -> None:
        if self.settings.replicas <= 0 or self.placement() is None:
            return
        token = self.settings.admin_token
        self._client = httpx.Client(
            timeout=httpx.Timeout(5.0, connect=1.0),
            headers={"Authorization": f"Bearer {token}"} if token else {},
            verify=client_context(self.settings.node_ca_file),  # replicas advertised as https://
        )
        name = self.settings.node_tls_server_name
        self._tls_name = {"sni_hostname": name} if name else {}  # the name on the nodes' certificate
        self._thread = threading.Thread(target=self._run, name="memoturn-replicator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()

    def offer(self, name: str, branch: str, data: bytes, first: int, last: int, head: int) -> None:
        if self._thread is None:
            return
        try:
            self._queue.put_nowait((name, branch, data, first, last, head))
        except queue.Full:
            self.metrics.replication_dropped.inc()

    def _run(self) -> None:
        assert self._client is not None
        while (item := self._queue.get()) is not None:
            name, branch, data, first, last, head = item
            if self.drop is not None and self.drop(name, branch, first):
                self.metrics.replication_dropped.inc()
                continue
            placement = self.placement()
            assert placement is not None
            targets = placement.replicas(f"{name}/{branch}", self.settings.node_id, self.settings.replicas)
            for target in targets:
                try:
                    self._client.post(
                        target["url"].rstrip("/") + f"/internal/v1/replicate/{name}",
                        params={"branch": branch},
                        content=data,
                        headers={"content-type": "application/octet-stream", "Memoturn-Head-Txid": str(head)},
                        extensions=self._tls_name,
                    )
                    self.metrics.replication_sent.inc()
                except httpx.HTTPError as exc:
                    self.metrics.replication_dropped.inc()
                    log.debug("streaming %s/%s %d-%d to %s failed: %s", name, branch, first, last, target["id"], exc)


class ReplicaCopy:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.conn: Any = None
        self.head_txid = 0
        self.epoch = 0
        self.timeline = 0
        self.stale = True
        self.checked_at = 0.0


class ReplicaSet:
    """Replica side: read-only copies kept current by streamed segments or restores."""

    def __init__(self, store: st.ObjectStore, settings: Settings, metrics: NodeMetrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self._lock = threading.Lock()
        self._copies: OrderedDict[str, ReplicaCopy] = OrderedDict()

    def _copy(self, name: str, branch: str) -> ReplicaCopy:
        key = f"{name}/{branch}"
        with self._lock:
            copy = self._copies.get(key)
            if copy is None:
                path = os.path.join(self.settings.cache_dir, "replicas", name, branch + ".db")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                copy = self._copies[key] = ReplicaCopy(path)
            self._copies.move_to_end(key)
            victims = []
            while len(self._copies) > max(1, self.settings.max_hot):
                _, old = self._copies.popitem(last=False)
                victims.append(old)
        for old in victims:
            with old.lock:
                self._close(old)
                drop_local_files(old.path)
        return copy

    @staticmethod
    def _close(copy: ReplicaCopy) -> None:
        if copy.conn is not None:
            copy.conn.close()
            copy.conn = None

    def _restore(self, name: str, branch: str, copy: ReplicaCopy) -> None:
        manifest, _ = load_manifest(self.store, name, branch)
        self._close(copy)
        restore_into(self.store, manifest, copy.path)
        copy.head_txid = manifest.head_txid
        copy.epoch = manifest.epoch
        copy.timeline = manifest.timeline
        copy.stale = False
        copy.checked_at = time.monotonic()
        copy.conn = connect(copy.path, self.settings.cache_kib_per_db)
        self.metrics.replica_restores.inc()

    def apply(self, name: str, branch: str, data: bytes, owner_head: int | None = None) -> dict[str, Any]:
        """Apply one streamed segment if it continues the chain; otherwise restore."""
        try:
            seg = decode_segment(data, where=f"streamed segment for {name}/{branch}")
        except SegmentCorrupt as exc:
            raise BadRequest(str(exc), type="segment-corrupt") from None
        if seg.database != name or seg.branch != branch:
            raise BadRequest(
                f"segment is for {seg.database}/{seg.branch}, not {name}/{branch}", type="segment-mismatch"
            )
        copy = self._copy(name, branch)
        with copy.lock:
            if (
                seg.timeline < copy.timeline
                or (seg.epoch < copy.epoch or seg.last_txid <= copy.head_txid)
                and not copy.stale
                and seg.timeline == copy.timeline
            ):
                return {"applied": False, "head_txid": copy.head_txid, "reason": "old"}
            if copy.stale or seg.first_txid != copy.head_txid + 1 or seg.timeline != copy.timeline:
                if not copy.stale:
                    self.metrics.replica_gaps.inc()
                self._restore(name, branch, copy)
                reason = "restored"
            else:
                self._close(copy)
                try:
                    with open(copy.path, "r+b") as f:
                        for txn in seg.txns:
                            for pgno, page in txn.pages.items():
                                f.seek((pgno - 1) * seg.page_size)
                                f.write(page)
                            f.truncate(txn.db_pages * seg.page_size)
                except OSError as exc:
                    copy.stale = True
                    raise DataCorrupt(f"could not apply segment to replica: {exc}") from None
                copy.head_txid = seg.last_txid
                copy.epoch = seg.epoch
                copy.checked_at = time.monotonic()
                copy.conn = connect(copy.path, self.settings.cache_kib_per_db)
                reason = "applied"
            lag = max(0, (owner_head or copy.head_txid) - copy.head_txid)
            self.metrics.replica_lag_txids.set(lag)
            self.metrics.replica_lag_seconds.observe(max(0.0, time.time() - seg.last_ts))
            return {"applied": reason == "applied", "head_txid": copy.head_txid, "reason": reason}

    def read(self, name: str, branch: str, fn: Callable[[Any], T], min_txid: int | None) -> tuple[T, int]:
        copy = self._copy(name, branch)
        deadline = time.monotonic() + self.settings.min_txid_wait_seconds
        checked = False
        while True:
            with copy.lock:
                too_old = time.monotonic() - copy.checked_at > self.settings.replica_max_staleness_seconds
                if (
                    copy.conn is None
                    or copy.stale
                    or too_old
                    or (min_txid is not None and copy.head_txid < min_txid and not checked)
                ):
                    # Nothing streamed for a while (or behind what the client saw): catch up
                    # from object storage, which holds everything the owner has shipped.
                    manifest, _ = load_manifest(self.store, name, branch)
                    if copy.conn is None or copy.stale or manifest.head_txid != copy.head_txid:
                        self._restore(name, branch, copy)
                    copy.checked_at = time.monotonic()
                    checked = True
                if min_txid is None or copy.head_txid >= min_txid:
                    return fn(copy.conn), copy.head_txid
                head = copy.head_txid
            if time.monotonic() >= deadline:
                raise PreconditionFailed(
                    f"replica of {name}/{branch} is at txid {head}, below Memoturn-Min-Txid {min_txid}",
                    type="min-txid-not-reached",
                    txid=head,
                )
            time.sleep(0.01)

    def describe(self, name: str, branch: str) -> dict[str, Any] | None:
        with self._lock:
            copy = self._copies.get(f"{name}/{branch}")
        if copy is None:
            return None
        return {
            "head_txid": copy.head_txid,
            "epoch": copy.epoch,
            "stale": copy.stale,
            "checked_seconds_ago": round(time.monotonic() - copy.checked_at, 3),
        }

    def close(self) -> None:
        with self._lock:
            copies = list(self._copies.values())
            self._copies.clear()
        for copy in copies:
            with copy.lock:
                self._close(copy)
