"""Embedded replicas: a profile's database as a local libSQL file, read without a network hop.

    from memoturn.client import Memoturn
    from memoturn.replica import open_replica

    mt = Memoturn("http://gateway:7400", token="...")
    alice = open_replica(mt, "acme", "alice", "~/.memoturn/alice.db", sync_interval=5)
    alice.add("Alice prefers green tea", type="preference")    # to the owner, then synced
    hits = alice.recall("what does Alice drink?")              # answered from the local file
    hits.txid, hits.staleness                                  # what it saw, and how fresh it is

* **Local file.** ``path`` is an ordinary libSQL database file, with ``path.replica.json``
  beside it (the txid, timeline and page size it holds, when it last synced). It survives a
  restart: opening it again continues from its txid.
* **sync()** asks the node (through the gateway or directly; the same tokens as every other
  profile route) for the segments after the local txid, verifies them all, then applies them.
  A segment is applied only when its txids continue the local chain without a gap; when the
  owner no longer stores them (merged into a snapshot, collected), when the snapshot would move
  fewer bytes than they do, or when the history changed (a rewind, or the profile deleted and
  created again), the replica starts again from the newest snapshot, built beside the file
  and renamed into place. Verification is end to end: the SHA-256 the manifest recorded, the segment's own
  seal, that it belongs to this profile, page sizes, and the unbroken txid chain. Anything
  forged or corrupt raises :class:`ReplicaCorrupt` and the local file and its txid stay as
  they were. Page writes happen with the file closed and a ``dirty`` mark in the state file, so
  a crash in the middle makes the next open start from a snapshot rather than read a torn file.
* **Reads** (recall, memories, KV, documents, read-only SQL) run on the local file and return
  a :class:`LocalResult`: the data, the local ``txid`` and the :class:`Staleness`.
* **Writes** go to the owner through the normal client; the call returns once the local file
  holds at least the write's txid (read-your-writes).
* **Background sync** every ``sync_interval`` seconds, and an **offline mode**: when the node
  cannot be reached, reads keep being answered and :attr:`EmbeddedReplica.staleness` says how
  old they are (seconds since the last sync, the owner's last known txid).

This module needs the server-side libraries (libsql, numpy; ``pip install memoturn[server]``):
the httpx-only SDK (:mod:`memoturn.client`) never imports it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .backoff import next_delay
from .client import Memoturn, ProblemError, Result
from .data import documents, kv, memories
from .data.embedding import Embedder, as_vector, get_embedder
from .data.vector_cache import VectorCache
from .errors import BadRequest, MemoturnError, NotFound
from .names import DEFAULT_BRANCH, profile_database
from .sql.connection import connect
from .storage.replica_feed import Feed, FeedCorrupt, decode_feed
from .storage.segment import SegmentCorrupt, Txn, decode_segment
from .storage.snapshot import SnapshotCorrupt, decode_snapshot

log = logging.getLogger("memoturn.replica")
STATE_FORMAT = 1
#: Answers that say the node could not be reached or could not answer now: the replica goes offline.
_OFFLINE_STATUSES = {0, 502, 503, 504}
_RETRY_TYPES = {"not-owner", "lease-lost", "fenced", "no-route", "store-unavailable", "replica-object-gone"}
_LOCAL_STATUS = {NotFound: 404, BadRequest: 400}


class ReplicaCorrupt(MemoturnError):
    """What the node sent failed verification; nothing of it was applied."""

    type, title = "replica-corrupt", "Replica data refused"


@dataclass(frozen=True)
class Staleness:
    """How fresh the local answers are."""

    txid: int  #: the local txid
    owner_txid: int | None  #: the owner's head when last asked (None: never reached)
    behind_txids: int | None  #: owner_txid - txid, as last known
    seconds_since_sync: float | None  #: since the last successful sync (None: never synced)
    offline: bool  #: the last attempt to reach the node failed (or the replica was opened offline)
    last_error: str | None


@dataclass
class LocalResult(Result):
    """A read answered from the local file: ``txid`` is the local one; ``staleness`` says how old it is."""

    staleness: Staleness | None = None


@dataclass(frozen=True)
class SyncReport:
    txid: int  #: the local txid after the sync
    applied_txns: int
    snapshot: bool  #: started again from a snapshot
    bytes: int  #: bytes received from the node
    seconds: float


@dataclass
class _State:
    database: str
    branch: str = DEFAULT_BRANCH
    txid: int = 0
    timeline: int = 0
    created_at: float = 0.0  # of the database: one deleted and created again is another history
    page_size: int = 0
    owner_txid: int | None = None
    synced_at: float | None = None  # unix seconds
    dirty: bool = False


@dataclass
class _Built:
    """Transactions verified and ready to apply, and what the state becomes once they are."""

    txns: list[Txn] = field(default_factory=list)
    txid: int = 0
    page_size: int = 0


def _ts(value: float | dt.datetime | None) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else value


class EmbeddedReplica:
    """A profile of ``client``'s server, replicated into the libSQL file ``path`` (see the module docs)."""

    def __init__(
        self,
        client: Memoturn,
        namespace: str,
        profile: str,
        path: str | os.PathLike[str],
        *,
        sync_interval: float | None = None,
        offline: bool = False,
        embedder: Embedder | None = None,
        sync_timeout: float = 30.0,
        snapshot_if_smaller: bool = True,
    ) -> None:
        self.client = client
        #: Start again from the snapshot when it moves fewer bytes than the segments (a replica far behind).
        self.snapshot_if_smaller = snapshot_if_smaller
        self.namespace, self.profile = namespace, profile
        self.database = profile_database(namespace, profile)
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.remote = client.profile(namespace, profile)
        self.remote_db = client.database(self.database)
        self.sync_timeout = sync_timeout
        self.embedder = embedder
        self.bytes_received = 0
        self._base = f"/v1/namespaces/{namespace}/profiles/{profile}/replica"
        self._lock = threading.RLock()  # the connection and the file
        self._sync_lock = threading.Lock()  # one sync at a time
        self._vectors = VectorCache(64 * 1024**2)
        self._conn: Any = None
        self._offline = offline
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lockfd = os.open(self.path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lockfd)
            raise BadRequest(f"{self.path} is open in another embedded replica", type="replica-in-use") from None
        try:
            self._state = self._load_state()
            self._open()
            if not offline:
                try:
                    self.sync()
                except ProblemError as exc:
                    if exc.status not in _OFFLINE_STATUSES:
                        raise
            if sync_interval is not None:
                self._thread = threading.Thread(
                    target=self._background, args=(sync_interval,), name="memoturn-replica-sync", daemon=True
                )
                self._thread.start()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.sync_timeout)
        with self._lock:
            self._close()
        if self._lockfd >= 0:
            os.close(self._lockfd)
            self._lockfd = -1

    def __enter__(self) -> EmbeddedReplica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def txid(self) -> int:
        """The txid the local file holds."""
        return self._state.txid

    @property
    def offline(self) -> bool:
        return self._offline

    def go_offline(self) -> None:
        """Stop talking to the node (background syncs pause); reads keep being answered."""
        self._offline = True

    def go_online(self) -> SyncReport:
        """Talk to the node again, starting with a sync."""
        self._offline = False
        return self.sync()

    @property
    def staleness(self) -> Staleness:
        s = self._state
        return Staleness(
            txid=s.txid,
            owner_txid=s.owner_txid,
            behind_txids=None if s.owner_txid is None else max(0, s.owner_txid - s.txid),
            seconds_since_sync=None if s.synced_at is None else max(0.0, time.time() - s.synced_at),
            offline=self._offline,
            last_error=self._last_error,
        )

    def _background(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self._offline and self._last_error is None:
                continue  # offline on purpose
            try:
                self.sync()
            except (MemoturnError, OSError) as exc:
                log.debug("background sync of %s failed: %s", self.database, exc)

    # -- the local file -------------------------------------------------------------------

    @property
    def _state_path(self) -> str:
        return self.path + ".replica.json"

    def _load_state(self) -> _State:
        try:
            with open(self._state_path) as f:
                raw = json.load(f)
        except FileNotFoundError:
            return _State(self.database)
        except ValueError:
            raw = {"database": self.database, "dirty": True}
        raw.pop("format", None)
        try:
            state = _State(**raw)
        except TypeError:
            state = _State(self.database, dirty=True)
        if state.database != self.database or state.branch != DEFAULT_BRANCH:
            raise BadRequest(
                f"{self.path} is a replica of {state.database}/{state.branch}, not {self.database}",
                type="replica-mismatch",
            )
        if state.dirty or (state.txid and not os.path.exists(self.path)):
            # A sync stopped half-way (or the file went): the next sync starts from a snapshot.
            state = _State(self.database, owner_txid=state.owner_txid, synced_at=state.synced_at, dirty=True)
        return state

    def _save_state(self, state: _State) -> None:
        tmp = self._state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"format": STATE_FORMAT, **state.__dict__}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._state_path)
        self._state = state

    def _open(self) -> None:
        """Open the local file read-only (there is nothing to read before the first transaction)."""
        if self._state.dirty or not self._state.txid or not os.path.exists(self.path):
            return
        conn = connect(self.path)
        conn.execute("PRAGMA query_only=ON").fetchall()
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def _drop_sidecars(path: str) -> None:
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)

    # -- talking to the node --------------------------------------------------------------

    def _get(self, path: str, *, params: dict[str, Any] | None = None, min_txid: int | None = None) -> httpx.Response:
        """GET one replica route, retrying what provably did not run and waiting for ``min_txid``."""
        headers = {"Memoturn-Min-Txid": str(min_txid)} if min_txid is not None else {}
        deadline = time.monotonic() + self.sync_timeout
        delay: float | None = None
        attempts = 0
        while True:
            try:
                r = self.client.http.get(self._base + path, params=params, headers=headers)
            except httpx.TransportError as exc:
                err = ProblemError(0, "unreachable", f"{self.client.url}: {exc}")
            else:
                if r.status_code < 400:
                    self.bytes_received += len(r.content)
                    return r
                err = ProblemError.from_response(r)
                waiting = err.type == "min-txid-not-reached"
                if not (waiting or r.status_code == 503 or err.type in _RETRY_TYPES):
                    raise err
            attempts += 1
            if time.monotonic() >= deadline or (err.type != "min-txid-not-reached" and attempts > self.client.retries):
                raise err
            delay = next_delay(delay, first=self.client.backoff, cap=0.5)
            time.sleep(delay)

    def _feed(self, after: int, min_txid: int | None) -> tuple[Feed, int]:
        params = {"after": after, "snapshot_if_smaller": str(self.snapshot_if_smaller).lower()}
        r = self._get("/segments", params=params, min_txid=min_txid)
        try:
            return decode_feed(r.content), len(r.content)
        except FeedCorrupt as exc:
            raise ReplicaCorrupt(f"feed of {self.database} after txid {after}: {exc}") from None

    def _verify(self, feed: Feed, after: int, page_size: int, timeline: int) -> _Built:
        """The transactions of ``feed`` that continue txid ``after``, every one verified; else :class:`ReplicaCorrupt`."""
        where = f"{self.database} after txid {after}"
        if (feed.database, feed.branch) != (self.database, DEFAULT_BRANCH):
            raise ReplicaCorrupt(f"{where}: the node sent the segments of {feed.database}/{feed.branch}")
        built = _Built(txid=after, page_size=page_size)
        expected = after + 1
        for entry, blob in zip(feed.entries, feed.blobs, strict=True):
            name = f"segment {entry.first_txid}-{entry.last_txid} of {self.database}"
            if hashlib.sha256(blob).hexdigest() != entry.sha256:
                raise ReplicaCorrupt(f"{name} does not match the checksum its manifest recorded")
            try:
                seg = decode_segment(blob, where=name)
            except SegmentCorrupt as exc:
                raise ReplicaCorrupt(str(exc)) from None
            if (seg.database, seg.branch) != (self.database, DEFAULT_BRANCH):
                raise ReplicaCorrupt(f"{name} is a segment of {seg.database}/{seg.branch}: refused")
            if (seg.first_txid, seg.last_txid) != (entry.first_txid, entry.last_txid):
                raise ReplicaCorrupt(f"{name} holds txids {seg.first_txid}-{seg.last_txid}")
            if seg.timeline > feed.timeline or seg.timeline > timeline:
                raise ReplicaCorrupt(f"{name} is of timeline {seg.timeline}, after the branch's {feed.timeline}")
            if built.page_size and seg.page_size != built.page_size:
                raise ReplicaCorrupt(f"{name} has {seg.page_size}-byte pages, the file {built.page_size}-byte ones")
            built.page_size = seg.page_size
            for txn in seg.txns:
                if txn.txid < expected:
                    continue
                if txn.txid > entry.apply_to:
                    break
                if txn.txid != expected:
                    raise ReplicaCorrupt(f"{name}: txid {txn.txid} does not follow {expected - 1} (a gap): refused")
                if txn.db_pages < 1 or any(p < 1 for p in txn.pages):
                    raise ReplicaCorrupt(f"{name}: txid {txn.txid} names an impossible page")
                built.txns.append(txn)
                expected += 1
        built.txid = expected - 1
        if feed.complete and built.txid != feed.head_txid:
            raise ReplicaCorrupt(f"{where}: the segments end at txid {built.txid}, the head is {feed.head_txid}")
        if not feed.complete and built.txid == after:
            raise ReplicaCorrupt(f"{where}: an incomplete feed carried no transaction")
        return built

    @staticmethod
    def _write_pages(f: Any, built: _Built) -> None:
        for txn in built.txns:
            for pgno, page in txn.pages.items():
                f.seek((pgno - 1) * built.page_size)
                f.write(page)
            f.truncate(txn.db_pages * built.page_size)
        f.flush()
        os.fsync(f.fileno())

    # -- sync -----------------------------------------------------------------------------

    def sync(self, *, min_txid: int | None = None) -> SyncReport:
        """Bring the local file up to the owner's head (at least ``min_txid``); see the module docs.

        Raises :class:`~memoturn.client.ProblemError` when the node refuses or cannot be
        reached (then the replica is offline, and reads go on), :class:`ReplicaCorrupt` when
        what it sent fails verification. Either way the local file stays as it was.
        """
        with self._sync_lock:
            t0 = time.perf_counter()
            received = self.bytes_received
            try:
                applied, snapshot = self._sync(min_txid)
            except ProblemError as exc:
                if exc.status in _OFFLINE_STATUSES:
                    self._offline = True
                self._last_error = str(exc)
                raise
            except ReplicaCorrupt as exc:
                self._last_error = str(exc)
                raise
            self._offline = False
            self._last_error = None
            return SyncReport(
                self._state.txid, applied, snapshot, self.bytes_received - received, time.perf_counter() - t0
            )

    def _sync(self, min_txid: int | None) -> tuple[int, bool]:
        state = self._state
        if state.dirty or not state.txid:
            return self._fresh(min_txid), True
        applied = 0
        while True:
            try:
                feed, _ = self._feed(self._state.txid, min_txid)
            except ProblemError as exc:
                if exc.type in ("segments-gone", "snapshot-smaller"):
                    return self._fresh(min_txid), True
                raise
            if (feed.timeline, feed.created_at) != (self._state.timeline, self._state.created_at):
                # Rewound, or deleted and created again: the local txids are another history.
                return self._fresh(min_txid), True
            built = self._verify(feed, self._state.txid, self._state.page_size, feed.timeline)
            if built.txns:
                with self._lock:
                    self._close()
                    # Dirty until the pages are on disk: a failure or crash in between makes the
                    # next sync start from a snapshot rather than read a torn file.
                    self._save_state(_State(**{**self._state.__dict__, "dirty": True}))
                    self._drop_sidecars(self.path)
                    with open(self.path, "r+b") as f:
                        self._write_pages(f, built)
                    self._commit(built, feed)
                applied += len(built.txns)
            else:
                self._save_state(_State(**{**self._state.__dict__, **self._seen(feed)}))
            if feed.complete:
                return applied, False
            min_txid = None

    def _seen(self, feed: Feed) -> dict[str, Any]:
        return {"owner_txid": feed.head_txid, "synced_at": time.time()}

    def _commit(self, built: _Built, feed: Feed) -> None:
        """Record the applied txid and reopen the file (under the file lock)."""
        self._save_state(
            _State(
                self.database,
                txid=built.txid,
                timeline=feed.timeline,
                created_at=feed.created_at,
                page_size=built.page_size,
                **self._seen(feed),
            )
        )
        self._open()

    def _fresh(self, min_txid: int | None) -> int:
        """Build the file again from the newest snapshot and the segments after it, beside the
        old one, and rename it into place only once all of it verified."""
        tmp = self.path + ".fresh"
        for _ in range(3):
            try:
                r = self._get("/snapshot")
            except ProblemError as exc:
                if exc.type == "not-found":  # no such profile yet: nothing to hold
                    self._save_state(_State(self.database, owner_txid=0, synced_at=time.time()))
                    with self._lock:
                        self._close()
                    return 0
                if exc.type != "no-snapshot":
                    raise
                base, history, page_size, data = 0, None, 0, b""
            else:
                base, history, page_size, data = self._verified_snapshot(r)
            applied = 0
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    txid, feed = base, None
                    while feed is None or not feed.complete:
                        try:
                            feed, _ = self._feed(txid, min_txid)
                        except ProblemError as exc:
                            if exc.type not in ("segments-gone", "snapshot-smaller"):
                                raise
                            break  # a newer snapshot landed meanwhile: start over from it
                        if history is None:
                            history = (feed.timeline, feed.created_at)
                        if (feed.timeline, feed.created_at) != history:
                            break  # rewound (or deleted and created again) meanwhile: start over
                        built = self._verify(feed, txid, page_size, feed.timeline)
                        self._write_pages(f, built)
                        txid, page_size, applied = built.txid, built.page_size, applied + len(built.txns)
                    else:
                        with self._lock:
                            self._close()
                            self._drop_sidecars(self.path)
                            os.replace(tmp, self.path)
                            self._commit(_Built(txid=txid, page_size=page_size), feed)
                        self._vectors = VectorCache(self._vectors.budget)
                        return applied
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        raise ProblemError(
            409,
            "replica-history-changed",
            f"{self.database} kept being rewound or recreated during the sync; sync again",
        )

    def _verified_snapshot(self, r: httpx.Response) -> tuple[int, tuple[int, float], int, bytes]:
        """The snapshot's txid, history (timeline, database creation time), page size and file bytes."""
        where = f"snapshot of {self.database}"
        if hashlib.sha256(r.content).hexdigest() != r.headers.get("Memoturn-Sha256"):
            raise ReplicaCorrupt(f"{where} does not match the checksum its manifest recorded")
        try:
            snap = decode_snapshot(r.content, where=where)
        except SnapshotCorrupt as exc:
            raise ReplicaCorrupt(str(exc)) from None
        if (snap.database, snap.branch) != (self.database, DEFAULT_BRANCH):
            raise ReplicaCorrupt(f"{where} is a snapshot of {snap.database}/{snap.branch}: refused")
        if str(snap.txid) != r.headers.get("Memoturn-Txid"):
            raise ReplicaCorrupt(f"{where} holds txid {snap.txid}, not {r.headers.get('Memoturn-Txid')}")
        try:
            history = (int(r.headers["Memoturn-Timeline"]), float(r.headers["Memoturn-Created-At"]))
        except (KeyError, ValueError):
            raise ReplicaCorrupt(f"{where} came without its timeline and creation time") from None
        return snap.txid, history, snap.page_size, snap.data

    def wait_for(self, txid: int | None) -> None:
        """Sync until the local file holds ``txid`` (a write's); no-op if it already does."""
        if txid is None:
            self.sync()
        elif self._state.txid < txid:
            self.sync(min_txid=txid)

    # -- local reads ----------------------------------------------------------------------

    def _read(self, fn: Callable[[Any], Any], empty: Any, *, missing: str | None = None) -> LocalResult:
        """``fn(conn)`` on the local file; ``empty`` while the replica holds nothing yet (or a 404
        of type ``missing``, for a read of one item)."""
        with self._lock:
            txid = self._state.txid
            if self._conn is None and missing is not None:
                raise ProblemError(404, missing, f"{self.database} holds nothing yet (txid {txid})", txid)
            try:
                data = fn(self._conn) if self._conn is not None else empty
            except MemoturnError as exc:
                status = next((s for cls, s in _LOCAL_STATUS.items() if isinstance(exc, cls)), 500)
                raise ProblemError(status, exc.type, exc.detail, txid) from None
        return LocalResult(data, txid, "embedded-replica", self.staleness)

    def _query_vector(self, query: str, embedding: list[float] | None) -> Any:
        with self._lock:
            dim = memories.profile_dim(self._conn) if self._conn is not None else None
            row = (
                self._conn.execute("SELECT value FROM __memoturn_meta WHERE key = 'embedder'").fetchone()
                if self._conn is not None
                else None
            )
        if embedding is not None:
            return as_vector(embedding, dim or len(embedding))
        if dim is None:
            return None
        model = self.embedder
        if model is None:
            spec = row[0] if row else "default"
            if spec == "client":
                raise BadRequest(
                    "this profile stores your own embeddings: pass embedding= to recall", type="embedding-required"
                )
            model = self.embedder = get_embedder(spec)
        if model.dim != dim:
            raise BadRequest(
                f"this profile stores {dim}-dimensional embeddings; the embedder makes {model.dim}",
                type="dimension-mismatch",
            )
        return model.embed([query])[0]

    def recall(
        self,
        query: str,
        *,
        limit: int = 10,
        min_score: float | None = None,
        embedding: list[float] | None = None,
        types: list[str] | None = None,
        tags: list[str] | None = None,
        since: float | dt.datetime | None = None,
        until: float | dt.datetime | None = None,
        metadata: dict[str, Any] | None = None,
        as_of: float | dt.datetime | None = None,
        include_superseded: bool = False,
        recency_half_life_days: float | None = None,
    ) -> LocalResult:
        """Recall from the local file, as the server's recall answers (``{"results": [...], "txid"}``)."""
        try:
            vector = self._query_vector(query, embedding)
        except MemoturnError as exc:
            raise ProblemError(400, exc.type, exc.detail, self._state.txid) from None

        def run(conn: Any) -> dict[str, Any]:
            hits = memories.recall(
                conn,
                query=query,
                vector=vector,
                limit=limit,
                types=types,
                tags=tags,
                since=_ts(since),
                until=_ts(until),
                metadata=metadata,
                as_of=_ts(as_of),
                include_superseded=include_superseded,
                recency_half_life_days=recency_half_life_days,
                cache=self._vectors,
                min_score=memories.DEFAULT_MIN_SCORE if min_score is None else min_score,
            )
            return {"results": hits, "txid": self._state.txid}

        return self._read(run, {"results": [], "txid": self._state.txid})

    def get(self, memory_id: str) -> LocalResult:
        return self._read(lambda c: memories.get(c, memory_id), None, missing="memory-not-found")

    def history(self, memory_id: str) -> LocalResult:
        return self._read(lambda c: memories.history(c, memory_id), None, missing="memory-not-found")

    def list_memories(
        self, *, types: list[str] | None = None, include_superseded: bool = False, limit: int = 100
    ) -> LocalResult:
        """Memories in id order (``{"memories": [...]}``)."""
        return self._read(
            lambda c: {
                "memories": memories.list_memories(
                    c, types=types, include_superseded=include_superseded, limit=limit, after=None
                )
                if memories.has_memories(c)
                else []
            },
            {"memories": []},
        )

    def stats(self) -> LocalResult:
        return self._read(memories.stats, {"memories": 0, "current": 0, "by_type": {}, "embedding_dim": None})

    def kv_get(self, key: str) -> LocalResult:
        """A KV item (``{"key", "value", "expires_at", "updated_at"}``); 404 ``key-not-found`` if absent."""
        kv.check_key(key)
        result = self._read(lambda c: kv.get(c, key), None, missing="key-not-found")
        if result.data is None:
            raise ProblemError(404, "key-not-found", f"key {key!r} not found in {self.database}", result.txid)
        return result

    def kv_list(self, prefix: str = "", limit: int = 100, *, values: bool = True) -> LocalResult:
        return self._read(lambda c: {"items": kv.list_keys(c, prefix, limit, None, values)}, {"items": []})

    def document(self, collection: str, doc_id: str) -> LocalResult:
        return self._read(lambda c: documents.get(c, collection, doc_id), None, missing="document-not-found")

    def query_documents(
        self,
        collection: str,
        *,
        filter: dict[str, Any] | None = None,
        sort: list[dict[str, str]] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> LocalResult:
        def run(c: Any) -> dict[str, Any]:
            docs, nxt = documents.query(c, collection, filter=filter, sort=sort, limit=limit, cursor=cursor)
            return {"documents": docs, "next_cursor": nxt}

        return self._read(run, {"documents": [], "next_cursor": None})

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> LocalResult:
        """One read-only SQL statement on the local file (``{"columns", "rows"}``); writes are refused."""

        def run(c: Any) -> dict[str, Any]:
            try:
                cur = c.execute(sql, tuple(params))
                rows = cur.fetchall()
            except Exception as exc:  # noqa: BLE001 - libsql raises its own error types
                raise BadRequest(f"local SQL failed: {exc}", type="sql-error") from None
            return {"columns": [d[0] for d in cur.description or ()], "rows": [list(r) for r in rows]}

        return self._read(run, {"columns": [], "rows": []})

    # -- writes: to the owner, then synced --------------------------------------------------

    def _synced(self, result: Result) -> Result:
        self.wait_for(result.txid)
        return result

    def add(self, content: str, *, type: str = "fact", durability: str | None = None, **fields: Any) -> Result:
        return self._synced(self.remote.add(content, type=type, durability=durability, **fields))

    def add_many(self, items: list[dict[str, Any]], *, durability: str | None = None) -> Result:
        return self._synced(self.remote.add_many(items, durability=durability))

    def forget(self, memory_id: str, *, durability: str | None = None) -> Result:
        return self._synced(self.remote.forget(memory_id, durability=durability))

    def kv_put(
        self, key: str, value: Any, *, ttl_seconds: float | None = None, durability: str | None = None
    ) -> Result:
        return self._synced(self.remote_db.kv_put(key, value, ttl_seconds=ttl_seconds, durability=durability))

    def kv_delete(self, key: str, *, durability: str | None = None) -> Result:
        return self._synced(self.remote_db.kv_delete(key, durability=durability))

    def execute(self, *statements: str | tuple[str, Any], transaction: bool = True) -> Result:
        """SQL that writes, run by the owner; returns once the local file holds its txid."""
        return self._synced(self.remote_db.sql(*statements, transaction=transaction))


def open_replica(
    client: Memoturn,
    namespace: str,
    profile: str,
    path: str | os.PathLike[str],
    *,
    sync_interval: float | None = None,
    offline: bool = False,
    embedder: Embedder | None = None,
) -> EmbeddedReplica:
    """Open (or create) the embedded replica of ``namespace``/``profile`` at ``path`` and sync it
    (unless ``offline``); ``sync_interval`` seconds starts a background sync."""
    return EmbeddedReplica(
        client, namespace, profile, path, sync_interval=sync_interval, offline=offline, embedder=embedder
    )
