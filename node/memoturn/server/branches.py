"""Branching: O(1) forks, checkpoints, rewind (and its undo), point-in-time, burner branches, GC.

* **Fork** writes one new manifest naming ``parent@txid`` and the ancestor objects that
  rebuild that point (the parent's plan for the txid): no page or segment is copied. The
  fork's own txids continue from the fork txid. Branches of branches work to any depth,
  because a fork's plan may itself name its parent's base objects.
* **Checkpoints** are named txids in the manifest; they pin nothing by themselves (a branch's
  objects stay referenced until compaction retention drops them), but a checkpoint's txid
  must be restorable when it is made.
* **Rewind** moves the head back by one manifest CAS that opens a new *timeline* (so reused
  txids get new object keys) and keeps the cut-off tail in ``abandoned`` for the grace
  window, during which :func:`undo_rewind` brings it back if nothing was written since.
  The owner's handle is restored to the new head under its lock: a request sees the old or
  the new state, never a mix.
* **Timestamps** resolve to the last txid committed at or before them.
* **Burner branches** carry ``expires_at``; an expired branch answers 404 and the next GC pass
  deletes its manifest.
* **GC** (:func:`collect`) is two-phase: an object no manifest references becomes a candidate,
  and is deleted by a later pass at least ``grace`` seconds on if still unreferenced. The
  safety argument is in ``docs/branching.md``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from .. import clock
from ..errors import BadRequest, Conflict, NotFound, Unavailable
from ..names import (
    DEFAULT_BRANCH,
    branch_of_prefix,
    check_branch_name,
    check_database_name,
    database_prefix,
    gc_state_key,
    is_manifest_key,
    manifest_key,
)
from ..storage import store as st
from ..storage.database import Database
from ..storage.manifest import (
    AbandonedTail,
    BranchPolicy,
    Manifest,
    ParentRef,
    SegmentRef,
    SnapshotRef,
    create_manifest,
    load_manifest,
    swap_manifest,
)
from ..storage.restore import _plan, earliest_txid, resolve_txid_at
from ..storage.shipper import Shipper


class BranchHost(Protocol):
    """What branching needs of the node serving the branches (so this module never imports it)."""

    store: st.ObjectStore
    shipper: Shipper

    def open(self, name: str, branch: str = DEFAULT_BRANCH) -> Database: ...

    def flush(self, name: str, branch: str = DEFAULT_BRANCH, timeout: float = 30.0) -> None: ...

    def drop_local(self, name: str, branch: str) -> None: ...


DEFAULT_GRACE_SECONDS = 600.0


def resolve_point(
    store: st.ObjectStore,
    manifest: Manifest,
    *,
    txid: int | None = None,
    checkpoint: str | None = None,
    timestamp: float | None = None,
) -> int:
    """One of txid / checkpoint / timestamp (or the head) as a txid of this branch, validated."""
    if sum(x is not None for x in (txid, checkpoint, timestamp)) > 1:
        raise BadRequest("give at most one of txid, checkpoint, timestamp", type="ambiguous-point")
    if checkpoint is not None:
        if checkpoint not in manifest.checkpoints:
            raise NotFound(
                f"no checkpoint {checkpoint!r} on {manifest.database}/{manifest.branch}", type="checkpoint-not-found"
            )
        txid = manifest.checkpoints[checkpoint]
    elif timestamp is not None:
        txid = resolve_txid_at(store, manifest, timestamp)
    elif txid is None:
        txid = manifest.head_txid
    if txid < 0 or txid > manifest.head_txid:
        raise BadRequest(
            f"txid {txid} is beyond the head of {manifest.database}/{manifest.branch} ({manifest.head_txid})",
            type="txid-out-of-range",
        )
    earliest = earliest_txid(manifest)
    if txid < earliest:
        raise BadRequest(f"txid {txid} is before retention (earliest restorable: {earliest})", type="before-retention")
    return txid


def fork(
    node: BranchHost,
    name: str,
    branch: str,
    *,
    parent: str = DEFAULT_BRANCH,
    txid: int | None = None,
    checkpoint: str | None = None,
    timestamp: float | None = None,
    ttl_seconds: float | None = None,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> Manifest:
    check_database_name(name)
    check_branch_name(branch)
    check_branch_name(parent)
    if branch == parent:
        raise Conflict(f"a branch cannot fork itself ({branch!r})", type="already-exists")
    if ttl_seconds is not None and ttl_seconds <= 0:
        raise BadRequest("ttl_seconds must be positive", type="invalid-ttl")
    node.flush(name, parent)  # commits still on this node's disk become visible to the fork
    started = time.monotonic()
    pm, _ = load_manifest(node.store, name, parent)
    if pm.expires_at is not None and pm.expires_at <= clock.now():
        raise NotFound(f"branch {parent!r} has expired", type="branch-expired")
    at = resolve_point(node.store, pm, txid=txid, checkpoint=checkpoint, timestamp=timestamp)
    base, steps = _plan(pm, at)
    child = Manifest(
        database=name,
        branch=branch,
        parent=ParentRef(branch=parent, txid=at),
        base_snapshot=base,
        base_segments=[ref.model_copy(update={"until": hi}) for ref, hi in steps],
        head_txid=at,
        head_ts=pm.head_ts if at == pm.head_txid else None,
        page_size=pm.page_size,
        expires_at=clock.now() + ttl_seconds if ttl_seconds else None,
    )
    create_manifest(node.store, child)
    # GC safety (docs/branching.md): the objects named were referenced by the parent when we
    # read it, so GC can delete them no sooner than a grace window after that; a fork that
    # took longer than half of it withdraws.
    if time.monotonic() - started > grace / 2:
        node.store.delete(manifest_key(name, branch))
        raise Unavailable(f"fork of {name}/{parent}@{at} raced with garbage collection; retry", type="fork-raced")
    return child


def list_branches(node: BranchHost, name: str) -> list[dict[str, Any]]:
    check_database_name(name)
    out = []
    for prefix in node.store.list(database_prefix(name), delimiter="/", limit=10_000).prefixes:
        branch = branch_of_prefix(name, prefix)
        try:
            m, _ = load_manifest(node.store, name, branch)
        except NotFound:
            continue  # objects without a manifest: a deleted branch awaiting GC
        out.append(describe(m))
    if not out:
        raise NotFound(f"database {name!r} does not exist")
    return out


def describe(m: Manifest) -> dict[str, Any]:
    return {
        "branch": m.branch,
        "parent": m.parent.model_dump() if m.parent else None,
        "head_txid": m.head_txid,
        "timeline": m.timeline,
        "checkpoints": m.checkpoints,
        "expires_at": m.expires_at,
        "created_at": m.created_at,
        "abandoned": [{"from_txid": a.from_txid, "head_txid": a.head_txid, "at": a.at} for a in m.abandoned],
    }


def delete_branch(node: BranchHost, name: str, branch: str) -> None:
    if branch == DEFAULT_BRANCH:
        raise BadRequest("the main branch goes with the database: DELETE /v1/databases/{db}", type="main-branch")
    load_manifest(node.store, name, branch)
    node.drop_local(name, branch)
    node.store.delete(manifest_key(name, branch))  # objects go at the next GC passes


def _owned_handle(node: BranchHost, name: str, branch: str) -> Database:
    db = node.open(name, branch)
    if not db.owned:
        db.write(lambda c: None, durable=False)  # take ownership (epoch, fencing CAS)
    return db


def set_checkpoint(node: BranchHost, name: str, branch: str, checkpoint: str, txid: int | None = None) -> int:
    check_branch_name(checkpoint)
    node.flush(name, branch)
    db = _owned_handle(node, name, branch)
    with db.log.ship_lock:
        at = resolve_point(node.store, db.manifest, txid=txid)
        if checkpoint in db.manifest.checkpoints:
            raise Conflict(
                f"checkpoint {checkpoint!r} exists (txid {db.manifest.checkpoints[checkpoint]})", type="already-exists"
            )
        db.log.cas(
            lambda m: m.model_copy(update={"checkpoints": {**m.checkpoints, checkpoint: at}}),
            landed=lambda m: m.checkpoints.get(checkpoint) == at,
        )
    return at


def delete_checkpoint(node: BranchHost, name: str, branch: str, checkpoint: str) -> None:
    db = _owned_handle(node, name, branch)
    with db.log.ship_lock:
        if checkpoint not in db.manifest.checkpoints:
            raise NotFound(f"no checkpoint {checkpoint!r}", type="checkpoint-not-found")
        db.log.cas(
            lambda m: m.model_copy(update={"checkpoints": {k: v for k, v in m.checkpoints.items() if k != checkpoint}}),
            landed=lambda m: checkpoint not in m.checkpoints,
        )


def set_policy(node: BranchHost, name: str, branch: str, policy: dict[str, Any]) -> dict[str, Any]:
    """Replace the branch's compaction/retention policy (unset fields use the node defaults)."""
    new = BranchPolicy.model_validate(policy)
    db = _owned_handle(node, name, branch)
    with db.log.ship_lock:
        db.log.cas(lambda m: m.model_copy(update={"policy": new}), landed=lambda m: m.policy == new)
    return new.model_dump()


def rewind(
    node: BranchHost,
    name: str,
    branch: str,
    *,
    txid: int | None = None,
    checkpoint: str | None = None,
    timestamp: float | None = None,
) -> int:
    db = _owned_handle(node, name, branch)
    with db.lock:
        _ship_everything(node, db)
        m = db.manifest
        at = resolve_point(node.store, m, txid=txid, checkpoint=checkpoint, timestamp=timestamp)
        if m.parent is not None and at < m.parent.txid:
            raise BadRequest(
                f"{branch} was forked at txid {m.parent.txid}; it cannot rewind before that (fork the parent instead)",
                type="before-fork",
            )
        if at == m.head_txid:
            return at

        def change(cur: Manifest) -> Manifest:
            tail = AbandonedTail(
                from_txid=at,
                head_txid=cur.head_txid,
                head_ts=cur.head_ts,
                timeline=cur.timeline,
                segments=[s for s in cur.segments if s.first_txid > at],
                snapshots=[s for s in cur.snapshots if s.txid > at],
                checkpoints={k: v for k, v in cur.checkpoints.items() if v > at},
            )
            segments = [
                s if s.last_txid <= at else s.model_copy(update={"until": at})
                for s in cur.segments
                if s.first_txid <= at
            ]
            return cur.model_copy(
                update={
                    "head_txid": at,
                    "head_ts": None,
                    "timeline": cur.timeline + 1,
                    "segments": segments,
                    "snapshots": [s for s in cur.snapshots if s.txid <= at],
                    "checkpoints": {k: v for k, v in cur.checkpoints.items() if v <= at},
                    "abandoned": [*cur.abandoned, tail],
                }
            )

        old_timeline = m.timeline
        with db.log.ship_lock:
            db.log.cas(change, landed=lambda cur: cur.timeline > old_timeline)
        db.reset_to_manifest()
    return at


def undo_rewind(node: BranchHost, name: str, branch: str) -> int:
    db = _owned_handle(node, name, branch)
    with db.lock:
        _ship_everything(node, db)
        m = db.manifest
        if not m.abandoned:
            raise Conflict("there is no rewind to undo", type="nothing-to-undo")
        tail = m.abandoned[-1]
        if m.head_txid != tail.from_txid:
            raise Conflict(
                f"{m.head_txid - tail.from_txid} txids were written since the rewind; fork from "
                "the abandoned tail is not possible in place",
                type="written-since-rewind",
            )

        def change(cur: Manifest) -> Manifest:
            keep = [s.model_copy(update={"until": None}) if s.until == tail.from_txid else s for s in cur.segments]
            return cur.model_copy(
                update={
                    "head_txid": tail.head_txid,
                    "head_ts": tail.head_ts,
                    "timeline": cur.timeline + 1,
                    "segments": keep + tail.segments,
                    "snapshots": cur.snapshots + tail.snapshots,
                    "checkpoints": {**cur.checkpoints, **tail.checkpoints},
                    "abandoned": cur.abandoned[:-1],
                }
            )

        old_timeline = m.timeline
        with db.log.ship_lock:
            db.log.cas(change, landed=lambda cur: cur.timeline > old_timeline)
        db.reset_to_manifest()
        return db.head_txid


def _ship_everything(node: BranchHost, db: Database) -> None:
    for _ in range(50):
        if not db.has_pending:
            return
        node.shipper.ship(db.log, snapshot=False)
        if db.has_pending:
            time.sleep(0.05)
    raise Unavailable(f"{db.key}: unshipped commits could not reach object storage", type="store-unavailable")


def collect(
    node: BranchHost, name: str, *, grace: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
) -> dict[str, Any]:
    """One GC pass over a database; see the module docstring and docs/branching.md."""
    check_database_name(name)
    store = node.store
    now = clock.now()
    manifests: dict[str, tuple[Manifest, str]] = {}
    for prefix in store.list(database_prefix(name), delimiter="/", limit=10_000).prefixes:
        branch = branch_of_prefix(name, prefix)
        try:
            manifests[branch] = load_manifest(store, name, branch)
        except NotFound:
            pass
    if not manifests:
        raise NotFound(f"database {name!r} does not exist")
    expired = [b for b, (m, _) in manifests.items() if m.expires_at is not None and m.expires_at <= now]
    dropped_tails = 0
    for branch, (m, etag) in list(manifests.items()):
        if branch in expired:
            if not dry_run:
                node.drop_local(name, branch)
                store.delete(manifest_key(name, branch))
            del manifests[branch]
            continue
        live = [a for a in m.abandoned if a.at + grace > now]
        if len(live) != len(m.abandoned):
            dropped_tails += len(m.abandoned) - len(live)
            if not dry_run:
                try:
                    new, new_etag = swap_manifest(store, m.model_copy(update={"abandoned": live}), etag)
                    manifests[branch] = (new, new_etag)
                except (st.ConditionFailed, Conflict):
                    pass  # changed meanwhile: its tails stay referenced until the next pass
    referenced: set[str] = set()
    for m, _ in manifests.values():
        refs: list[SegmentRef | SnapshotRef] = [
            *m.segments,
            *m.snapshots,
            *m.base_segments,
            *([m.base_snapshot] if m.base_snapshot else []),
        ]
        for tail in m.abandoned:
            refs += [*tail.segments, *tail.snapshots]
        referenced.update(r.key for r in refs)
    objects = [k for k in store.iter_keys(database_prefix(name)) if not is_manifest_key(k)]
    unreferenced = [k for k in objects if k not in referenced]
    state_key = gc_state_key(name)
    try:
        state = json.loads(store.get(state_key)[0])
    except st.ObjectNotFound:
        state = {}
    doomed = [k for k in unreferenced if k in state and now - state[k] >= grace]
    pending = {k: state.get(k, now) for k in unreferenced if k not in doomed}
    if not dry_run:
        for key in doomed:
            store.delete(key)
        if pending:
            store.put(state_key, json.dumps(pending).encode())
        else:
            store.delete(state_key)
    return {
        "database": name,
        "branches": sorted(manifests),
        "expired_branches": sorted(expired),
        "abandoned_tails_dropped": dropped_tails,
        "objects": len(objects),
        "referenced": len(referenced),
        "unreferenced": len(unreferenced),
        "deleted": sorted(doomed),
        "candidates": len(pending),
        "dry_run": dry_run,
    }
