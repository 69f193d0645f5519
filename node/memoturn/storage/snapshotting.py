"""When a branch takes a snapshot, and how the snapshot lands in its manifest.

A snapshot is due after ``snapshot_every_txids`` txids or ``snapshot_every_bytes`` of pages
since the last one (the branch policy overrides the txid count). It is uploaded at once; it
joins the manifest in the same CAS that makes the head reach its txid (at once when the head
is already shipped), and :mod:`memoturn.storage.retention` then prunes what it makes unnecessary.
The file is copied by the database (``take``), which declines while a writer holds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..config import Settings
from ..metrics import NodeMetrics
from ..names import snapshot_key
from . import store as st
from .branch_log import BranchLog
from .manifest import SnapshotRef
from .retention import with_snapshot
from .snapshot import Snapshot, encode_snapshot

TakeSnapshot = Callable[[], Snapshot | None]


def maybe_snapshot(
    log: BranchLog, take: TakeSnapshot, settings: Settings, metrics: NodeMetrics, *, force: bool = False
) -> bool:
    """Take a snapshot when one is due (or forced); True when one was taken. Under ``ship_lock``."""
    if log.pending_snapshot is not None:
        return False
    every = log.manifest.policy.snapshot_every_txids or settings.snapshot_every_txids
    due = log.txids_since_snapshot >= every or log.bytes_since_snapshot >= settings.snapshot_every_bytes
    if not (due or force):
        return False
    snap = take()
    if snap is None:
        return False
    data = encode_snapshot(snap)
    key = snapshot_key(log.name, log.branch, snap.txid, snap.epoch, log.timeline)
    try:
        log.store.put(key, data, if_none_match=True)
    except st.ConditionFailed:
        pass  # same epoch and txid: the same bytes from an earlier attempt
    ref = SnapshotRef(
        key=key, txid=snap.txid, ts=snap.ts, size=len(data), sha256=hashlib.sha256(data).hexdigest(), epoch=snap.epoch
    )
    log.txids_since_snapshot = 0
    log.bytes_since_snapshot = 0
    metrics.snapshots_written.inc()
    if log.manifest.head_txid >= ref.txid:
        log.cas(
            lambda m: m.model_copy(update=with_snapshot(m, ref, *log.retention())),
            landed=lambda m: any(x.key == key for x in m.snapshots),
        )
    else:
        log.pending_snapshot = ref
    return True
