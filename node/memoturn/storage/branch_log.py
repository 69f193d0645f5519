"""One branch's log in object storage, as this node writes it: the one owner of its replication state.

Contract:

* The log holds the manifest as last written or read and its ETag, the writer's epoch, the
  segments committed locally but not yet shipped (:attr:`pending`), the txid shipped up to
  (:attr:`shipped_txid`), a snapshot waiting for the head to reach it, and why shipping last
  failed. Nothing else changes them: the database appends, the shipper ships, branching
  changes the manifest through :meth:`cas`.
* :attr:`cond` guards those fields and wakes waiters when they change; :attr:`ship_lock`
  serialises whole ship/CAS sequences (one at a time per branch). Lock order: a caller
  holding the database's write lock may take ``ship_lock``, never the reverse.
* Every manifest change is a compare-and-swap on the ETag under the writer's epoch
  (:mod:`memoturn.storage.manifest`): a lost CAS reloads; a newer epoch raises :class:`Fenced`,
  after which the log is fenced and never ships again. A response lost in flight is
  recognised on retry (``landed``), so a retried append never lands twice.
* Segments are written ``If-None-Match: *``: an existing object with the same bytes is an
  earlier attempt of ours; different bytes mean another writer, i.e. fencing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings
from ..errors import DataCorrupt, NotOwner, Unavailable
from ..metrics import NodeMetrics
from ..names import segment_key
from . import store as st
from .manifest import Fenced, Manifest, SegmentRef, SnapshotRef, load_manifest, swap_manifest
from .retention import with_snapshot
from .segment import Segment, encode_segment, merge_segments
from .snapshot import Snapshot

ManifestChange = Callable[[Manifest], Manifest]
Landed = Callable[[Manifest], bool]


@dataclass(frozen=True)
class Shipped:
    """What one ship landed: the segment object, its bytes and its txid range."""

    key: str
    data: bytes
    first_txid: int
    last_txid: int
    first_ts: float

    @property
    def txids(self) -> int:
        return self.last_txid - self.first_txid + 1


class BranchLog:
    def __init__(
        self,
        store: st.ObjectStore,
        name: str,
        branch: str,
        manifest: Manifest,
        etag: str,
        *,
        settings: Settings,
        metrics: NodeMetrics,
        take_snapshot: Callable[[], Snapshot | None] = lambda: None,
    ) -> None:
        self.store = store
        self.name = name
        self.branch = branch
        self.key = f"{name}/{branch}"
        self.settings = settings
        self.metrics = metrics
        #: Copies the local file at the head (the database's; declines while a writer holds it).
        self.take_snapshot = take_snapshot
        self.cond = threading.Condition()
        self.ship_lock = threading.Lock()
        self.manifest = manifest
        self.etag = etag
        self.epoch: int | None = None
        self.timeline = manifest.timeline
        self.pending: list[Segment] = []
        self.appended_txid = manifest.head_txid
        self.shipped_txid = manifest.head_txid
        self.pending_snapshot: SnapshotRef | None = None
        self.ship_error: str | None = None
        self.corrupt: str | None = None  # the stored manifest failed verification
        self.fenced: str | None = None
        self.last_ship_at = float("-inf")  # monotonic start of the last ship (paces shipping)
        self.txids_since_snapshot = 0
        self.bytes_since_snapshot = 0

    # -- the writer's side ----------------------------------------------------------------

    def append(self, seg: Segment) -> None:
        """Queue a sealed segment (its txids follow the last appended one) to ship."""
        with self.cond:
            self.pending.append(seg)
            self.appended_txid = seg.last_txid
        self.txids_since_snapshot += seg.last_txid - seg.first_txid + 1
        self.bytes_since_snapshot += sum(len(t.pages) for t in seg.txns) * seg.page_size

    def adopt(self, manifest: Manifest, etag: str | None = None) -> None:
        """Start again from ``manifest`` (the local copy was restored from it): nothing of the
        old head is pending, and a snapshot taken on the old timeline never lands."""
        with self.cond:
            if etag is not None:
                self.manifest, self.etag = manifest, etag
            self.appended_txid = self.shipped_txid = manifest.head_txid
            self.timeline = manifest.timeline
            self.pending_snapshot = None
        self.txids_since_snapshot = self.bytes_since_snapshot = 0

    def take_ownership(self, manifest: Manifest, etag: str, epoch: int, owner: str) -> None:
        """The fencing write: ``manifest`` (as read at ``etag``, the state the local copy
        matches) now names ``epoch`` and ``owner``; a change since then loses the CAS."""
        try:
            new, new_etag = swap_manifest(
                self.store, manifest.model_copy(update={"epoch": epoch, "owner": owner}), etag
            )
        except Fenced as exc:
            raise NotOwner(str(exc)) from None
        except st.ConditionFailed:
            raise NotOwner(f"{self.key}: manifest changed during acquisition; retry") from None
        with self.cond:
            self.manifest, self.etag = new, new_etag
        self.epoch = epoch

    def fence(self, reason: str) -> None:
        """Stop at once: a newer epoch owns the branch (or it was deleted). Pending is void."""
        with self.cond:
            self.fenced = reason
            self.pending.clear()
            self.cond.notify_all()
        self.metrics.fencing_events.inc()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait_shipped(self, txid: int, timeout: float, *, closed: Callable[[], bool] = lambda: False) -> None:
        """Block until ``txid`` is in the stored manifest; raise as soon as that cannot happen now."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.shipped_txid < txid:
                if self.fenced:
                    raise NotOwner(f"{self.key}: {self.fenced}")
                if self.corrupt:
                    raise DataCorrupt(
                        f"txid {txid} committed locally but cannot ship: {self.corrupt}", type="data-corrupt", txid=txid
                    )
                if self.ship_error:
                    raise Unavailable(
                        f"txid {txid} committed locally but not yet durable: {self.ship_error}",
                        type="store-unavailable",
                        txid=txid,
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(f"txid {txid} not durable after {timeout}s", type="durable-timeout", txid=txid)
                self.cond.wait(left)

    # -- the shipper's side ---------------------------------------------------------------

    def pending_segments(self) -> list[Segment]:
        with self.cond:
            return list(self.pending)

    @property
    def has_pending(self) -> bool:
        with self.cond:
            return bool(self.pending)

    def retention(self) -> tuple[int, float]:
        """(snapshots to keep, seconds of history to keep): the branch policy, else the node's."""
        p = self.manifest.policy
        return (
            p.keep_snapshots or self.settings.keep_snapshots,
            p.retention_seconds if p.retention_seconds is not None else self.settings.retention_seconds,
        )

    def ship(self, segs: list[Segment]) -> Shipped:
        """Write ``segs`` as one segment object and CAS-append it (with a due snapshot); under ``ship_lock``."""
        seg = segs[0] if len(segs) == 1 else merge_segments(segs)
        data = encode_segment(seg)
        digest = hashlib.sha256(data).hexdigest()
        key = segment_key(self.name, self.branch, seg.first_txid, seg.last_txid, seg.epoch, seg.timeline)
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
                raise Fenced(f"{self.key}: manifest head {m.head_txid} does not precede txid {seg.first_txid}")
            new = m.model_copy(
                update={
                    "segments": [*m.segments, ref],
                    "head_txid": seg.last_txid,
                    "head_ts": seg.last_ts,
                    "page_size": seg.page_size,
                }
            )
            snap = self.pending_snapshot
            if snap is not None and snap.txid <= seg.last_txid:
                # Prune against the manifest that already lists the new segment (found by the
                # GC property test: pruning the old list dropped the segment just shipped).
                new = new.model_copy(update=with_snapshot(new, snap, *self.retention()))
            return new

        self.cas(change, landed=lambda m: any(s.key == key for s in m.segments))
        with self.cond:
            if self.pending_snapshot is not None and self.pending_snapshot.txid <= seg.last_txid:
                self.pending_snapshot = None
            self.pending = [s for s in self.pending if s.first_txid > seg.last_txid]
            self.shipped_txid = seg.last_txid
            self.cond.notify_all()
        return Shipped(key, data, seg.first_txid, seg.last_txid, seg.first_ts)

    def cas(self, change: ManifestChange, landed: Landed) -> None:
        """Apply ``change`` to the manifest by CAS under our epoch, recognising an earlier lost response."""
        for _ in range(5):
            with self.cond:
                manifest, etag = self.manifest, self.etag
            if manifest.epoch != self.epoch:
                raise Fenced(f"{self.key}: manifest epoch {manifest.epoch} is not ours ({self.epoch})")
            try:
                new, new_etag = swap_manifest(self.store, change(manifest), etag)
            except st.ConditionFailed:
                current, cur_etag = load_manifest(self.store, self.name, self.branch)
                if current.epoch != self.epoch:
                    raise Fenced(f"{self.key}: now owned by epoch {current.epoch}") from None
                with self.cond:
                    self.manifest, self.etag = current, cur_etag
                if landed(current):
                    return
                continue
            with self.cond:
                self.manifest, self.etag = new, new_etag
            return
        raise Unavailable(f"{self.key}: manifest CAS kept failing")

    def failed(self, detail: str, *, corrupt: bool) -> None:
        """Record why shipping failed: waiters fail fast; ``corrupt`` also refuses new writes."""
        with self.cond:
            self.ship_error = detail
            self.corrupt = detail if corrupt else None
            self.cond.notify_all()

    def succeeded(self) -> None:
        with self.cond:
            self.ship_error = None
            self.corrupt = None
