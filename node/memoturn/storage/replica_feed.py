"""What an embedded replica is served: a branch's snapshot, and its segments after a txid, as one feed.

An embedded replica (:mod:`memoturn.replica`) is a client-side copy of a profile's database. It
starts from the branch's newest snapshot (or an empty file when the branch has none) and then
asks for the segments after its txid. The node answers with a *feed*: the sealed segment
objects exactly as object storage holds them, behind a header that lists each one's txid range,
the last txid to apply from it, its size and the SHA-256 the manifest recorded. The node does
not re-verify what it passes on: the replica verifies the whole path end to end (manifest
checksum, segment seal, database and branch, unbroken txid chain) before it writes anything.

Layout::

    b"MTFEED01", u32 header length, header JSON
        database, branch, created_at, timeline, head_txid, head_ts, after, complete,
        segments: [{first_txid, last_txid, apply_to, size, sha256}]
    the segment objects, back to back, in header order

:func:`chain_after` plans a feed from a manifest and raises :class:`TxidGap` when the txids
after ``after`` are no longer all in the store (merged away below a snapshot, or collected):
the replica then starts again from the snapshot. :func:`check_cheaper_than_snapshot` says so
too (:class:`SnapshotSmaller`) when the snapshot would move fewer bytes than the segments.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import Conflict
from .manifest import Manifest, SegmentRef, SnapshotRef

MAGIC = b"MTFEED01"
#: A feed stops after the segment that takes it past this many bytes (the replica asks again).
FEED_MAX_BYTES = 32 * 1024**2


class TxidGap(Conflict):
    """The segments after the asked txid are no longer stored: start from the snapshot."""

    type = "segments-gone"


class SnapshotSmaller(Conflict):
    """The segments after the asked txid weigh more than the snapshot and the segments after it."""

    type = "snapshot-smaller"


def check_cheaper_than_snapshot(manifest: Manifest, after: int) -> None:
    """:class:`SnapshotSmaller` when starting again from the newest snapshot moves fewer bytes
    than the segments after ``after`` (a replica far behind: thousands of one-transaction segments
    repeat the same pages, a snapshot holds each page once)."""
    snap = newest_snapshot(manifest)
    if snap is None or snap.txid <= after:
        return
    unbounded = 2**62
    behind = sum(r.size for r, _ in chain_after(manifest, after, unbounded)[0])
    fresh = snap.size + sum(r.size for r, _ in chain_after(manifest, snap.txid, unbounded)[0])
    if behind > fresh:
        raise SnapshotSmaller(
            f"the segments after txid {after} are {behind} bytes, the snapshot at txid {snap.txid} and the "
            f"segments after it {fresh}: start again from the snapshot"
        )


class FeedCorrupt(Exception):
    """A feed's framing is damaged (the segments inside are checked by their own seals)."""


@dataclass
class FeedEntry:
    first_txid: int
    last_txid: int
    apply_to: int  # the last txid to apply from this segment (a rewind may cut one short)
    size: int
    sha256: str


@dataclass
class Feed:
    database: str
    branch: str
    timeline: int
    head_txid: int
    head_ts: float | None
    after: int
    complete: bool
    #: When the branch was created: a database deleted and created again is another history.
    created_at: float = 0.0
    entries: list[FeedEntry] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)


def newest_snapshot(manifest: Manifest) -> SnapshotRef | None:
    """The snapshot a fresh copy of the head starts from (the newest one), or None."""
    fork = manifest.parent.txid if manifest.parent else 0
    snaps = [s for s in manifest.snapshots if s.txid <= manifest.head_txid]
    if manifest.base_snapshot is not None and manifest.base_snapshot.txid <= fork:
        snaps.append(manifest.base_snapshot)
    return max(snaps, key=lambda s: s.txid) if snaps else None


def chain_after(
    manifest: Manifest, after: int, max_bytes: int = FEED_MAX_BYTES
) -> tuple[list[tuple[SegmentRef, int]], bool]:
    """The ``(segment, last txid to apply)`` steps from ``after + 1`` towards the head, and
    whether they reach it (a feed stops once past ``max_bytes``). :class:`TxidGap` if a txid is missing."""
    target = manifest.head_txid
    if after > target:
        raise TxidGap(
            f"{manifest.database}/{manifest.branch} is at txid {target}, behind the asked txid {after} "
            "(rewound?): start from the snapshot"
        )
    fork = manifest.parent.txid if manifest.parent else 0
    candidates = [(r, min(r.last_txid, fork, target)) for r in manifest.base_segments]
    candidates += [
        (r, min(r.last_txid, target, r.until if r.until is not None else r.last_txid)) for r in manifest.segments
    ]
    candidates.sort(key=lambda c: (c[0].first_txid, -c[1]))
    expected = after + 1
    steps: list[tuple[SegmentRef, int]] = []
    size = 0
    for ref, hi in candidates:
        if expected > target or size >= max_bytes:
            break
        if hi < expected:
            continue  # covered already
        if ref.first_txid > expected:
            break
        steps.append((ref, hi))
        size += ref.size
        expected = hi + 1
    complete = expected > target
    if not complete and size < max_bytes:
        raise TxidGap(
            f"{manifest.database}/{manifest.branch}: txid {expected} is no longer stored as a segment "
            "(merged into a snapshot or collected): start from the snapshot"
        )
    return steps, complete


def encode_feed(feed: Feed) -> bytes:
    header: dict[str, Any] = {
        "database": feed.database,
        "branch": feed.branch,
        "created_at": feed.created_at,
        "timeline": feed.timeline,
        "head_txid": feed.head_txid,
        "head_ts": feed.head_ts,
        "after": feed.after,
        "complete": feed.complete,
        "segments": [e.__dict__ for e in feed.entries],
    }
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack(">I", len(hbytes)), hbytes, *feed.blobs])


def decode_feed(data: bytes) -> Feed:
    """Split a feed into its header and segment objects; :class:`FeedCorrupt` if the framing is wrong."""
    if len(data) < len(MAGIC) + 4 or not data.startswith(MAGIC):
        raise FeedCorrupt("not a Memoturn replica feed (bad magic or too short)")
    (hlen,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        h = json.loads(data[start : start + hlen])
        feed = Feed(
            database=str(h["database"]),
            branch=str(h["branch"]),
            timeline=int(h["timeline"]),
            head_txid=int(h["head_txid"]),
            head_ts=None if h["head_ts"] is None else float(h["head_ts"]),
            after=int(h["after"]),
            complete=bool(h["complete"]),
            created_at=float(h["created_at"]),
            entries=[
                FeedEntry(
                    int(e["first_txid"]), int(e["last_txid"]), int(e["apply_to"]), int(e["size"]), str(e["sha256"])
                )
                for e in h["segments"]
            ],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise FeedCorrupt(f"malformed feed header ({exc})") from None
    pos = start + hlen
    for entry in feed.entries:
        if entry.size < 0 or pos + entry.size > len(data):
            raise FeedCorrupt("feed is shorter than its header says")
        feed.blobs.append(data[pos : pos + entry.size])
        pos += entry.size
    if pos != len(data):
        raise FeedCorrupt(f"{len(data) - pos} bytes after the last segment of the feed")
    return feed
