"""Branch manifests: the CAS-updated JSON index of a branch in object storage.

A manifest lists a branch's parent (``branch@txid``), snapshots, segments, checkpoints, head
txid and the writer epoch. It is the only mutable object of a branch and is changed only by
compare-and-swap: :func:`create_manifest` uses ``If-None-Match: *`` and :func:`swap_manifest`
uses ``If-Match`` with the ETag the writer last saw. Every swap carries the writer's epoch;
what fences a zombie is the ETag: a new owner's fencing CAS changes it, so the zombie's next
swap fails its condition, and :func:`swap_manifest` then reads the stored epoch to tell the
caller it was fenced (:class:`Fenced`) rather than merely raced. A manifest carries a SHA-256
of its own JSON, so a damaged one is refused rather than misread.
"""

from __future__ import annotations

import hashlib
import time

from pydantic import BaseModel, Field, ValidationError

from ..errors import Conflict, DataCorrupt, NotFound
from ..names import manifest_key
from . import store as st

FORMAT = 1


class SegmentRef(BaseModel):
    key: str
    first_txid: int
    last_txid: int
    #: Set by a rewind to a txid inside this segment: apply it only up to here.
    until: int | None = None
    first_ts: float
    last_ts: float
    size: int
    sha256: str
    epoch: int


class SnapshotRef(BaseModel):
    key: str
    txid: int
    ts: float
    size: int
    sha256: str
    epoch: int


class ParentRef(BaseModel):
    branch: str
    txid: int


class AbandonedTail(BaseModel):
    """What a rewind cut off: kept (and protected from GC) for the grace window, so it can be undone."""

    from_txid: int
    head_txid: int
    head_ts: float | None = None
    timeline: int
    segments: list[SegmentRef] = Field(default_factory=list)
    snapshots: list[SnapshotRef] = Field(default_factory=list)
    checkpoints: dict[str, int] = Field(default_factory=dict)
    at: float = Field(default_factory=time.time)


class BranchPolicy(BaseModel):
    """Per-branch compaction and retention; unset fields fall back to the node's settings."""

    snapshot_every_txids: int | None = Field(None, ge=1)
    keep_snapshots: int | None = Field(None, ge=1)
    retention_seconds: float | None = Field(
        None, ge=0, description="keep every snapshot younger than this (PITR window)"
    )
    merge_segments_over: int | None = Field(None, ge=2, description="merge small segments once a branch has more")


class Manifest(BaseModel):
    format: int = FORMAT
    database: str
    branch: str
    generation: int = 0
    epoch: int = 0
    owner: str | None = None
    head_txid: int = 0
    head_ts: float | None = None
    page_size: int = 4096
    parent: ParentRef | None = None
    #: Ancestor objects that rebuild the fork point (txids up to ``parent.txid``): a fork
    #: copies no data, it names them, and GC counts these references like its own.
    base_snapshot: SnapshotRef | None = None
    base_segments: list[SegmentRef] = Field(default_factory=list)
    timeline: int = 0
    abandoned: list[AbandonedTail] = Field(default_factory=list)
    expires_at: float | None = None
    policy: BranchPolicy = Field(default_factory=BranchPolicy)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    snapshots: list[SnapshotRef] = Field(default_factory=list)
    segments: list[SegmentRef] = Field(default_factory=list)
    checkpoints: dict[str, int] = Field(default_factory=dict)

    def encode(self) -> bytes:
        """JSON with a ``checksum`` field: SHA-256 of the same JSON without it."""
        body = self.model_dump_json().encode()
        digest = hashlib.sha256(body).hexdigest()
        return body[:-1] + b',"checksum":"' + digest.encode() + b'"}'

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Verify the checksum and parse; ValueError on any defect."""
        marker = data.rfind(b',"checksum":"')
        if marker < 0 or not data.endswith(b'"}'):
            raise ValueError("no checksum")
        body = data[:marker] + b"}"
        if hashlib.sha256(body).hexdigest().encode() != data[marker + 13 : -2]:
            raise ValueError("checksum mismatch")
        return cls.model_validate_json(body)


class Fenced(Conflict):
    """A newer epoch owns the branch; this writer must stop serving it at once."""

    type = "fenced"


def load_manifest(store: st.ObjectStore, database: str, branch: str) -> tuple[Manifest, str]:
    """Read a branch manifest and its ETag."""
    key = manifest_key(database, branch)
    try:
        data, etag = store.get(key)
    except st.ObjectNotFound:
        raise NotFound(f"database {database!r} branch {branch!r} does not exist") from None
    try:
        manifest = Manifest.decode(data)
    except (ValueError, ValidationError) as exc:
        raise DataCorrupt(f"manifest {key} is corrupt: {str(exc).splitlines()[0]}") from None
    if manifest.database != database or manifest.branch != branch:
        raise DataCorrupt(f"manifest {key} names {manifest.database}/{manifest.branch}")
    return manifest, etag


def create_manifest(store: st.ObjectStore, manifest: Manifest) -> str:
    """Create a branch manifest; :class:`Conflict` if the branch already exists."""
    key = manifest_key(manifest.database, manifest.branch)
    try:
        return store.put(key, manifest.encode(), if_none_match=True)
    except st.ConditionFailed:
        raise Conflict(
            f"database {manifest.database!r} branch {manifest.branch!r} already exists",
            type="already-exists",
        ) from None


def swap_manifest(store: st.ObjectStore, manifest: Manifest, etag: str) -> tuple[Manifest, str]:
    """CAS-replace the manifest last read with ``etag``; return the new one and its ETag.

    Raises :class:`Fenced` when the stored manifest has a newer epoch, and
    :class:`st.ConditionFailed` when it changed under the same epoch (the caller reloads).
    """
    new = manifest.model_copy(update={"generation": manifest.generation + 1, "updated_at": time.time()})
    key = manifest_key(manifest.database, manifest.branch)
    try:
        new_etag = store.put(key, new.encode(), if_match=etag)
    except st.ConditionFailed:
        current, _ = load_manifest(store, manifest.database, manifest.branch)
        if current.epoch > manifest.epoch:
            raise Fenced(
                f"{manifest.database}/{manifest.branch} is owned by epoch {current.epoch}, "
                f"this writer has epoch {manifest.epoch}"
            ) from None
        raise
    return new, new_etag
