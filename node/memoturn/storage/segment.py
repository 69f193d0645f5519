"""Sealed page segments: the immutable, checksummed unit a node ships to object storage.

A segment holds one or more consecutive transactions (txids ``first_txid..last_txid``) of one
branch, each as the final images of the pages it wrote plus the database size after it.

Layout (all integers big-endian)::

    b"MTSEG001"                     magic
    u32 header length, header JSON  database, branch, epoch, first/last txid, page size,
                                    and per transaction: txid, commit timestamp, db pages,
                                    page count
    per transaction, per page:      u32 page number, page bytes
    32 bytes                        SHA-256 of everything above

:func:`decode_segment` verifies the magic, the checksum, the header and that the txids are
contiguous, and raises :class:`SegmentCorrupt` with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field

MAGIC = b"MTSEG001"
_DIGEST = 32


class SegmentCorrupt(Exception):
    """A segment failed verification."""


@dataclass
class Txn:
    """One committed transaction inside a segment."""

    txid: int
    ts: float
    db_pages: int
    pages: dict[int, bytes] = field(default_factory=dict)


@dataclass
class Segment:
    database: str
    branch: str
    epoch: int
    page_size: int
    txns: list[Txn]
    #: Bumped by every rewind of the branch: the same txid on a new timeline is new data.
    timeline: int = 0

    @property
    def first_txid(self) -> int:
        return self.txns[0].txid

    @property
    def last_txid(self) -> int:
        return self.txns[-1].txid

    @property
    def first_ts(self) -> float:
        return self.txns[0].ts

    @property
    def last_ts(self) -> float:
        return self.txns[-1].ts


def encode_segment(seg: Segment) -> bytes:
    """Serialise and seal ``seg`` (header, pages, SHA-256 trailer)."""
    if not seg.txns:
        raise ValueError("a segment needs at least one transaction")
    header = {
        "database": seg.database,
        "branch": seg.branch,
        "epoch": seg.epoch,
        "timeline": seg.timeline,
        "page_size": seg.page_size,
        "first_txid": seg.first_txid,
        "last_txid": seg.last_txid,
        "txns": [{"txid": t.txid, "ts": t.ts, "db_pages": t.db_pages, "pages": len(t.pages)} for t in seg.txns],
    }
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    parts = [MAGIC, struct.pack(">I", len(hbytes)), hbytes]
    pack = struct.Struct(">I").pack
    for t in seg.txns:
        for pgno in sorted(t.pages):
            page = t.pages[pgno]
            if len(page) != seg.page_size:
                raise ValueError(f"page {pgno} has {len(page)} bytes, expected {seg.page_size}")
            parts.append(pack(pgno))
            parts.append(page)
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def decode_segment(data: bytes, *, where: str = "segment") -> Segment:
    """Verify and parse a sealed segment; raise :class:`SegmentCorrupt` on any defect."""
    if len(data) < len(MAGIC) + 4 + _DIGEST or not data.startswith(MAGIC):
        raise SegmentCorrupt(f"{where}: not a Memoturn segment (bad magic or too short)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise SegmentCorrupt(f"{where}: checksum mismatch")
    (hlen,) = struct.unpack_from(">I", body, len(MAGIC))
    hstart = len(MAGIC) + 4
    try:
        header = json.loads(body[hstart : hstart + hlen])
        page_size = int(header["page_size"])
        txn_meta = header["txns"]
        seg = Segment(
            database=str(header["database"]),
            branch=str(header["branch"]),
            epoch=int(header["epoch"]),
            timeline=int(header.get("timeline", 0)),
            page_size=page_size,
            txns=[],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SegmentCorrupt(f"{where}: malformed header ({exc})") from None
    pos = hstart + hlen
    step = 4 + page_size
    for meta in txn_meta:
        txn = Txn(txid=int(meta["txid"]), ts=float(meta["ts"]), db_pages=int(meta["db_pages"]))
        for _ in range(int(meta["pages"])):
            if pos + step > len(body):
                raise SegmentCorrupt(f"{where}: truncated page data")
            (pgno,) = struct.unpack_from(">I", body, pos)
            txn.pages[pgno] = body[pos + 4 : pos + step]
            pos += step
        seg.txns.append(txn)
    if pos != len(body):
        raise SegmentCorrupt(f"{where}: {len(body) - pos} trailing bytes")
    if not seg.txns:
        raise SegmentCorrupt(f"{where}: no transactions")
    for prev, cur in zip(seg.txns, seg.txns[1:], strict=False):
        if cur.txid != prev.txid + 1:
            raise SegmentCorrupt(f"{where}: txids {prev.txid} -> {cur.txid} are not contiguous")
    if seg.first_txid != header.get("first_txid") or seg.last_txid != header.get("last_txid"):
        raise SegmentCorrupt(f"{where}: header txid range disagrees with its transactions")
    return seg


def merge_segments(segments: list[Segment]) -> Segment:
    """Concatenate consecutive segments of one branch and epoch into one."""
    first = segments[0]
    txns: list[Txn] = []
    for seg in segments:
        if txns and seg.first_txid != txns[-1].txid + 1:
            raise ValueError("segments to merge must be contiguous")
        txns.extend(seg.txns)
    return Segment(first.database, first.branch, first.epoch, first.page_size, txns, first.timeline)
