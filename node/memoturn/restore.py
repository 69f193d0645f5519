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

from . import store as st
from .errors import BadRequest, DataCorrupt, Unavailable
from .manifest import Manifest, SegmentRef
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
    except st.StoreUnavailable as exc:
        raise Unavailable(f"object store unavailable: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DataCorrupt(f"object {key} does not match the checksum in its manifest")
    return data


def _chain(manifest: Manifest, base: int, target: int) -> list[SegmentRef]:
    """The segments that carry txids ``base+1..target``, verified to leave no gap."""
    refs = sorted(
        (s for s in manifest.segments if s.last_txid > base and s.first_txid <= target),
        key=lambda s: s.first_txid,
    )
    expected = base + 1
    chain: list[SegmentRef] = []
    for ref in refs:
        if ref.last_txid < expected:
            continue  # fully covered by an earlier (larger) segment
        if ref.first_txid > expected:
            break
        chain.append(ref)
        expected = ref.last_txid + 1
    if expected <= target:
        raise DataCorrupt(
            f"{manifest.database}/{manifest.branch}: txid {expected} is missing from the "
            f"store (gap before the target txid {target})",
            type="txid-gap",
        )
    return chain


def resolve_txid_at(store: st.ObjectStore, manifest: Manifest, ts: float) -> int:
    """The last txid committed at or before ``ts`` (0 if none but the branch existed)."""
    if manifest.head_ts is not None and ts >= manifest.head_ts:
        return manifest.head_txid
    best = 0
    for snap in manifest.snapshots:
        if snap.ts <= ts:
            best = max(best, snap.txid)
    for ref in sorted(manifest.segments, key=lambda s: s.first_txid):
        if ref.first_ts > ts:
            break
        if ref.last_ts <= ts:
            best = max(best, ref.last_txid)
            continue
        seg = decode_segment(_fetch(store, ref.key, ref.sha256), where=ref.key)
        for txn in seg.txns:
            if txn.ts <= ts:
                best = max(best, txn.txid)
    if best == 0 and ts < manifest.created_at:
        raise BadRequest(
            f"{manifest.database}/{manifest.branch} did not exist at {ts}", type="before-creation"
        )
    return best


def restore(
    store: st.ObjectStore,
    manifest: Manifest,
    path: str,
    *,
    txid: int | None = None,
) -> RestoreResult:
    """Materialise the branch at ``txid`` (default: head) as the database file ``path``."""
    target = manifest.head_txid if txid is None else txid
    if target < 0 or target > manifest.head_txid:
        raise BadRequest(
            f"txid {target} is beyond the head of {manifest.database}/{manifest.branch} "
            f"({manifest.head_txid})",
            type="txid-out-of-range",
        )
    snaps = [s for s in manifest.snapshots if s.txid <= target]
    base_ref = max(snaps, key=lambda s: s.txid) if snaps else None
    base_txid = base_ref.txid if base_ref else 0
    chain = _chain(manifest, base_txid, target)

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
            for ref in chain:
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
                    if txn.txid > target:
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
