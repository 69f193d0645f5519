"""Restore a branch from object storage alone, to its head or to any retained txid or time.

The plan is: the newest snapshot at or below the target txid (or an empty file when the
branch has none yet), then every segment after it in txid order up to the target. Each
object is checked against the SHA-256 the manifest recorded and against its own seal, and
the txid chain must be unbroken; any gap or mismatch raises :class:`DataCorrupt` and
nothing is written to ``path`` (restore builds a temporary file and renames it into place).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from ..errors import BadRequest, DataCorrupt
from . import store as st
from .manifest import Manifest, SegmentRef, SnapshotRef
from .segment import SegmentCorrupt, decode_segment
from .snapshot import SnapshotCorrupt, decode_snapshot


@dataclass
class RestoreResult:
    txid: int
    ts: float | None
    bytes_read: int
    segments: int
    txns_applied: int


def _fetch(store: st.ObjectStore, key: str, sha256: str) -> bytes:
    try:
        data, _ = store.get(key)
    except st.ObjectNotFound:
        raise DataCorrupt(f"object {key} named by the manifest is missing") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DataCorrupt(f"object {key} does not match the checksum in its manifest")
    return data


def _plan(manifest: Manifest, target: int) -> tuple[SnapshotRef | None, list[tuple[SegmentRef, int]]]:
    """The base snapshot and the ``(segment, last txid to apply)`` steps for ``target``.

    A fork's own objects carry txids after its fork point; below it, the ancestor objects the
    fork named at creation (``base_snapshot``/``base_segments``) are used, never past the
    fork txid. Raises :class:`DataCorrupt` on any gap.
    """
    fork = manifest.parent.txid if manifest.parent else 0
    snaps = [s for s in manifest.snapshots if s.txid <= target]
    if manifest.base_snapshot is not None and manifest.base_snapshot.txid <= min(fork, target):
        snaps.append(manifest.base_snapshot)
    base = max(snaps, key=lambda s: s.txid) if snaps else None
    expected = (base.txid if base else 0) + 1
    candidates = [(r, min(r.last_txid, fork, target)) for r in manifest.base_segments]
    candidates += [
        (r, min(r.last_txid, target, r.until if r.until is not None else r.last_txid)) for r in manifest.segments
    ]
    candidates.sort(key=lambda c: (c[0].first_txid, -c[1]))
    steps: list[tuple[SegmentRef, int]] = []
    for ref, hi in candidates:
        if expected > target:
            break
        if hi < expected:
            continue  # covered already
        if ref.first_txid > expected:
            break
        steps.append((ref, hi))
        expected = hi + 1
    if expected <= target:
        raise DataCorrupt(
            f"{manifest.database}/{manifest.branch}: txid {expected} is missing from the "
            f"store (gap before the target txid {target})",
            type="txid-gap",
        )
    return base, steps


def earliest_txid(manifest: Manifest) -> int:
    """The oldest txid this branch can still be restored to."""
    refs = manifest.base_segments + manifest.segments
    if not refs or min(r.first_txid for r in refs) <= 1:
        return 0
    snaps = manifest.snapshots + ([manifest.base_snapshot] if manifest.base_snapshot else [])
    return min((s.txid for s in snaps), default=0)


def resolve_txid_at(store: st.ObjectStore, manifest: Manifest, ts: float) -> int:
    """The last txid of this branch committed at or before ``ts`` (0 if none but the branch existed).

    Ancestor segments a fork names are consulted only up to the fork txid.
    """
    if manifest.head_ts is not None and ts >= manifest.head_ts:
        return manifest.head_txid
    best = 0
    fork = manifest.parent.txid if manifest.parent else None
    snaps = manifest.snapshots + ([manifest.base_snapshot] if manifest.base_snapshot else [])
    for snap in snaps:
        if snap.ts <= ts:
            best = max(best, snap.txid)
    refs = [(r, fork if fork is not None else r.last_txid) for r in manifest.base_segments]
    refs += [(r, r.last_txid) for r in manifest.segments]
    for ref, hi in sorted(refs, key=lambda c: c[0].first_txid):
        if ref.first_ts > ts or ref.first_txid > hi:
            continue
        if ref.last_ts <= ts and ref.last_txid <= hi:
            best = max(best, ref.last_txid)
            continue
        seg = decode_segment(_fetch(store, ref.key, ref.sha256), where=ref.key)
        for txn in seg.txns:
            if txn.ts <= ts and txn.txid <= hi:
                best = max(best, txn.txid)
    if best == 0 and ts < manifest.created_at and fork is None:
        raise BadRequest(f"{manifest.database}/{manifest.branch} did not exist at {ts}", type="before-creation")
    return min(best, manifest.head_txid)


def restore(
    store: st.ObjectStore,
    manifest: Manifest,
    path: str,
    *,
    txid: int | None = None,
) -> RestoreResult:
    """Materialise the branch at ``txid`` (default: head) as the database file ``path``."""
    target = manifest.head_txid if txid is None else txid
    if target < earliest_txid(manifest):
        raise BadRequest(
            f"txid {target} of {manifest.database}/{manifest.branch} is before retention "
            f"(earliest restorable: {earliest_txid(manifest)})",
            type="before-retention",
        )
    if target < 0 or target > manifest.head_txid:
        raise BadRequest(
            f"txid {target} is beyond the head of {manifest.database}/{manifest.branch} ({manifest.head_txid})",
            type="txid-out-of-range",
        )
    base_ref, chain = _plan(manifest, target)
    base_txid = base_ref.txid if base_ref else 0
    tmp = f"{path}.restore-{os.getpid()}"
    bytes_read = 0
    applied = 0
    last_ts = base_ref.ts if base_ref else None
    try:
        with open(tmp, "wb") as f:
            if base_ref is not None:
                raw = _fetch(store, base_ref.key, base_ref.sha256)
                bytes_read += len(raw)
                try:
                    snap = decode_snapshot(raw, where=base_ref.key)
                except SnapshotCorrupt as exc:
                    raise DataCorrupt(str(exc)) from None
                if snap.txid != base_ref.txid:
                    raise DataCorrupt(f"{base_ref.key}: holds txid {snap.txid}, manifest says {base_ref.txid}")
                f.write(snap.data)
            expected = base_txid + 1
            for ref, hi in chain:
                raw = _fetch(store, ref.key, ref.sha256)
                bytes_read += len(raw)
                try:
                    seg = decode_segment(raw, where=ref.key)
                except SegmentCorrupt as exc:
                    raise DataCorrupt(str(exc)) from None
                if seg.first_txid != ref.first_txid or seg.last_txid != ref.last_txid:
                    raise DataCorrupt(f"{ref.key}: txid range disagrees with the manifest")
                for txn in seg.txns:
                    if txn.txid < expected:
                        continue
                    if txn.txid > hi:
                        break
                    if txn.txid != expected:
                        raise DataCorrupt(f"{ref.key}: expected txid {expected}, found {txn.txid}", type="txid-gap")
                    for pgno, page in txn.pages.items():
                        f.seek((pgno - 1) * seg.page_size)
                        f.write(page)
                    f.truncate(txn.db_pages * seg.page_size)
                    last_ts = txn.ts
                    expected += 1
                    applied += 1
            if expected != target + 1:
                raise DataCorrupt(f"restore stopped at txid {expected - 1}, wanted {target}", type="txid-gap")
            f.flush()
            os.fsync(f.fileno())
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return RestoreResult(target, last_ts, bytes_read, len(chain), applied)
