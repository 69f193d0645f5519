"""Merging a branch's oldest run of small segment objects into one (same txids, same chain).

Restore reads one object per segment, so thousands of tiny segments make restores slow; a
merge replaces a run of them in the manifest by one object with the same content. Only
segments under :data:`MERGED_SEGMENT_MAX_BYTES` take part, and a merge stops before it would
exceed that size: a merged segment is never re-read and re-written by the next merge, so the
bytes a merge moves stay bounded (merging the ever-growing oldest segment again and again
made shipping quadratic and stalled it for hundreds of milliseconds). Forks that name the old
objects keep naming them (GC keeps what any manifest names).
"""

from __future__ import annotations

import hashlib

from ..config import Settings
from ..errors import DataCorrupt
from ..metrics import NodeMetrics
from ..names import segment_key
from .branch_log import BranchLog
from .manifest import Manifest, SegmentRef
from .recent_segments import RecentSegments
from .segment import decode_segment, encode_segment, merge_segments

#: Segments at least this big are left as they are, and merging never makes a bigger one.
MERGED_SEGMENT_MAX_BYTES = 1 << 20


def maybe_merge(log: BranchLog, recent: RecentSegments, settings: Settings, metrics: NodeMetrics) -> None:
    """Merge the oldest run of small segments when the branch has more than its limit of them."""
    limit = log.manifest.policy.merge_segments_over or settings.merge_segments_over
    segs = sorted((s for s in log.manifest.segments if s.until is None), key=lambda s: s.first_txid)
    small = [s for s in segs if s.size < MERGED_SEGMENT_MAX_BYTES]
    if len(small) <= limit:
        return
    run: list[SegmentRef] = []
    for ref in segs:
        fits = ref.size < MERGED_SEGMENT_MAX_BYTES and sum(r.size for r in run) + ref.size <= MERGED_SEGMENT_MAX_BYTES
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
        data = recent.take(ref.key)
        if data is None:
            data, _ = log.store.get(ref.key)
            metrics.merge_segment_reads.inc()
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise DataCorrupt(f"{ref.key} does not match its manifest checksum")
        parts.append(decode_segment(data, where=ref.key))
    merged = merge_segments(parts)
    merged.epoch, merged.timeline = log.epoch or merged.epoch, log.timeline
    data = encode_segment(merged)
    key = segment_key(log.name, log.branch, merged.first_txid, merged.last_txid, merged.epoch, merged.timeline)
    log.store.put(key, data, if_none_match=True)
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

    log.cas(change, landed=lambda m: any(s.key == key for s in m.segments) or not old <= {s.key for s in m.segments})
    recent.add(key, data)  # small enough to be merged again later
    metrics.segments_merged.inc(len(run))
