"""Which snapshots and segments a manifest keeps once a new snapshot lands.

Pure: a manifest and a snapshot in, the manifest's new ``snapshots`` (and ``segments``) out.
Point-in-time restore reaches back to the oldest kept snapshot, so segments before it go;
checkpoints pin their history (the snapshot at or before each checkpoint stays).
"""

from __future__ import annotations

from typing import Any

from .. import clock
from .manifest import Manifest, SnapshotRef


def with_snapshot(m: Manifest, ref: SnapshotRef, keep: int, retention_seconds: float = 0.0) -> dict[str, Any]:
    """Manifest fields after adding ``ref``: the newest ``keep`` snapshots, every snapshot younger
    than ``retention_seconds``, the segments after the oldest kept one, and whatever every
    checkpoint still needs (checkpoints pin their history)."""
    every = sorted([*[s for s in m.snapshots if s.key != ref.key], ref], key=lambda s: s.txid)
    newest = every[-max(1, keep) :]
    young = [s for s in every if retention_seconds and s.ts >= clock.now() - retention_seconds]
    snaps = sorted({s.key: s for s in [*young, *newest]}.values(), key=lambda s: s.txid)
    floor = snaps[0].txid
    for pin in m.checkpoints.values():
        if pin < floor:
            older = [s for s in every if s.txid <= pin]
            if older:
                snaps = sorted({s.key: s for s in [older[-1], *snaps]}.values(), key=lambda s: s.txid)
                floor = min(floor, older[-1].txid)
            else:
                floor = 0
    if len(snaps) == len(every) or floor == 0:
        return {"snapshots": every if floor == 0 else snaps}
    return {"snapshots": snaps, "segments": [s for s in m.segments if s.last_txid > floor]}
