"""Snapshots: a whole database file at one txid, sealed like a segment.

Periodic compaction writes one so that restore never replays an unbounded tail. Layout::

    b"MTSNP001", u32 header length, header JSON (database, branch, epoch, txid, ts,
    page_size, db_pages), the database file bytes, 32-byte SHA-256 of everything above.

:func:`decode_snapshot` verifies it and raises :class:`SnapshotCorrupt` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

MAGIC = b"MTSNP001"
_DIGEST = 32


class SnapshotCorrupt(Exception):
    """A snapshot failed verification."""


@dataclass
class Snapshot:
    database: str
    branch: str
    epoch: int
    txid: int
    ts: float
    page_size: int
    data: bytes

    @property
    def db_pages(self) -> int:
        return len(self.data) // self.page_size if self.page_size else 0


def encode_snapshot(snap: Snapshot) -> bytes:
    """Serialise and seal a snapshot."""
    if snap.page_size and len(snap.data) % snap.page_size:
        raise ValueError("snapshot data is not a whole number of pages")
    header = {
        "database": snap.database,
        "branch": snap.branch,
        "epoch": snap.epoch,
        "txid": snap.txid,
        "ts": snap.ts,
        "page_size": snap.page_size,
        "db_pages": snap.db_pages,
    }
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    h = hashlib.sha256()
    parts = [MAGIC, struct.pack(">I", len(hbytes)), hbytes, snap.data]
    for p in parts:
        h.update(p)
    return b"".join(parts) + h.digest()


def decode_snapshot(data: bytes, *, where: str = "snapshot") -> Snapshot:
    """Verify and parse a sealed snapshot."""
    if len(data) < len(MAGIC) + 4 + _DIGEST or not data.startswith(MAGIC):
        raise SnapshotCorrupt(f"{where}: not a Memoturn snapshot (bad magic or too short)")
    view = memoryview(data)
    if hashlib.sha256(view[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise SnapshotCorrupt(f"{where}: checksum mismatch")
    (hlen,) = struct.unpack_from(">I", data, len(MAGIC))
    hstart = len(MAGIC) + 4
    try:
        header = json.loads(bytes(view[hstart : hstart + hlen]))
        snap = Snapshot(
            database=str(header["database"]),
            branch=str(header["branch"]),
            epoch=int(header["epoch"]),
            txid=int(header["txid"]),
            ts=float(header["ts"]),
            page_size=int(header["page_size"]),
            data=bytes(view[hstart + hlen : -_DIGEST]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotCorrupt(f"{where}: malformed header ({exc})") from None
    if snap.page_size and (len(snap.data) % snap.page_size or snap.db_pages != header.get("db_pages")):
        raise SnapshotCorrupt(f"{where}: data size disagrees with header")
    return snap
