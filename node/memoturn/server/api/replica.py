"""Embedded-replica routes: a profile's manifest view, its newest snapshot, its segments after a txid.

They sit under ``/v1/namespaces/{namespace}/profiles/{profile}/replica``, so the same tokens
reach them as the profile's other routes (a namespace token only its own namespace's), and the
gateway forwards them to the owner like any profile request. They read only that profile's
branch objects, as object storage holds them (format in :mod:`memoturn.storage.replica_feed`).

Before answering, the node ships what it committed on the profile and has not shipped yet, so a
sync sees every acknowledged write; ``Memoturn-Min-Txid`` makes a sync that must include a given
write answer ``412 min-txid-not-reached`` rather than less.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from ...errors import Conflict, NotFound, PreconditionFailed
from ...names import DEFAULT_BRANCH, profile_database
from ...storage import store as st
from ...storage.manifest import Manifest, load_manifest
from ...storage.replica_feed import (
    FEED_MAX_BYTES,
    Feed,
    FeedEntry,
    chain_after,
    check_cheaper_than_snapshot,
    encode_feed,
    newest_snapshot,
)
from ..node import Node
from .params import ERRORS, MinTxid, NodeDep, set_txid
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["replica"])
BASE = "/v1/namespaces/{namespace}/profiles/{profile}/replica"
FEED_TYPE = "application/vnd.memoturn.feed"
_FETCHERS = 8


class SnapshotView(BaseModel):
    txid: int
    ts: float
    size: int
    sha256: str


class SegmentView(BaseModel):
    first_txid: int
    last_txid: int
    apply_to: int = Field(description="the last txid to apply from it (a rewind may cut a segment short)")
    size: int
    sha256: str


class ReplicaManifest(BaseModel):
    database: str
    branch: str
    head_txid: int
    head_ts: float | None
    timeline: int
    page_size: int
    snapshot: SnapshotView | None = Field(description="the snapshot a fresh replica starts from")
    segments: list[SegmentView] = Field(description="the segments after that snapshot, in txid order")


def _current(node: Node, namespace: str, profile: str, min_txid: int | None) -> Manifest:
    """The profile's manifest once what this node committed on it has shipped."""
    db = profile_database(namespace, profile)
    if node.is_hot(f"{db}/{DEFAULT_BRANCH}"):
        node.flush(db)
    manifest, _ = load_manifest(node.store, db, DEFAULT_BRANCH)
    if min_txid is not None and manifest.head_txid < min_txid:
        raise PreconditionFailed(
            f"{db} has shipped txid {manifest.head_txid}, below Memoturn-Min-Txid {min_txid}",
            type="min-txid-not-reached",
            txid=manifest.head_txid,
        )
    return manifest


def _get(node: Node, key: str, what: str) -> bytes:
    try:
        data, _ = node.store.get(key)
    except st.ObjectNotFound:
        raise Conflict(f"{what} {key} was collected meanwhile; ask again", type="replica-object-gone") from None
    return data


@router.get(BASE + "/manifest", response_model=ReplicaManifest)
def replica_manifest(
    namespace: str, profile: str, response: Response, node: NodeDep, min_txid: MinTxid = None
) -> ReplicaManifest:
    """What a fresh replica needs: the newest snapshot and the segments after it."""
    m = _current(node, namespace, profile, min_txid)
    snap = newest_snapshot(m)
    steps, _ = chain_after(m, snap.txid if snap else 0, max_bytes=2**62)
    set_txid(response, m.head_txid)
    return ReplicaManifest(
        database=m.database,
        branch=m.branch,
        head_txid=m.head_txid,
        head_ts=m.head_ts,
        timeline=m.timeline,
        page_size=m.page_size,
        snapshot=SnapshotView(txid=snap.txid, ts=snap.ts, size=snap.size, sha256=snap.sha256) if snap else None,
        segments=[
            SegmentView(first_txid=r.first_txid, last_txid=r.last_txid, apply_to=hi, size=r.size, sha256=r.sha256)
            for r, hi in steps
        ],
    )


@router.get(
    BASE + "/snapshot",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the sealed snapshot object"}},
)
def replica_snapshot(namespace: str, profile: str, node: NodeDep) -> Response:
    """The profile's newest snapshot as stored (``Memoturn-Txid``: its txid); 404 ``no-snapshot`` if none yet."""
    m = _current(node, namespace, profile, None)
    snap = newest_snapshot(m)
    if snap is None:
        raise NotFound(f"{m.database} has no snapshot yet: replay its segments from txid 1", type="no-snapshot")
    data = _get(node, snap.key, "snapshot")
    headers = {
        "Memoturn-Txid": str(snap.txid),
        "Memoturn-Timeline": str(m.timeline),
        "Memoturn-Created-At": repr(m.created_at),
        "Memoturn-Sha256": snap.sha256,
    }
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get(
    BASE + "/segments",
    response_class=Response,
    responses={200: {"content": {FEED_TYPE: {}}, "description": "a replica feed (memoturn.storage.replica_feed)"}},
)
def replica_segments(
    namespace: str,
    profile: str,
    node: NodeDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="the replica's txid: send the segments after it")],
    max_bytes: Annotated[int, Query(ge=1, le=FEED_MAX_BYTES)] = FEED_MAX_BYTES,
    min_txid: MinTxid = None,
    snapshot_if_smaller: Annotated[
        bool, Query(description="answer 409 snapshot-smaller when the snapshot would move fewer bytes")
    ] = True,
) -> Response:
    """The segments carrying txids ``after + 1`` up to the head (``Memoturn-Txid``), as stored;
    ``409 segments-gone`` when some are no longer stored, ``409 snapshot-smaller`` when the
    snapshot and the segments after it weigh less (either way: start again from the snapshot)."""
    m = _current(node, namespace, profile, min_txid)
    if snapshot_if_smaller:
        check_cheaper_than_snapshot(m, after)
    steps, complete = chain_after(m, after, max_bytes)
    keys = [r.key for r, _ in steps]
    if len(keys) > 2:
        with ThreadPoolExecutor(min(_FETCHERS, len(keys))) as pool:
            blobs = list(pool.map(lambda k: _get(node, k, "segment"), keys))
    else:
        blobs = [_get(node, k, "segment") for k in keys]
    feed = Feed(
        database=m.database,
        branch=m.branch,
        timeline=m.timeline,
        head_txid=m.head_txid,
        head_ts=m.head_ts,
        after=after,
        complete=complete,
        created_at=m.created_at,
        entries=[FeedEntry(r.first_txid, r.last_txid, hi, r.size, r.sha256) for r, hi in steps],
        blobs=blobs,
    )
    return Response(encode_feed(feed), media_type=FEED_TYPE, headers={"Memoturn-Txid": str(m.head_txid)})
