"""A data-plane node: hosts many databases, each hot, warm or cold, on a disk that is a cache.

* **hot**: an open :class:`Database` in :attr:`Node._hot` (LRU order).
* **warm**: a closed, checkpointed file in the cache directory with a sidecar recording the
  manifest generation it matches; reused on the next open only if the stored manifest has
  not changed since, otherwise restored afresh.
* **cold**: nothing local; opening restores from object storage.

Memory is bounded by the hot and warm budgets, not by the number of databases ever served:
cold databases leave no trace in this process. The cache directory is wiped at start-up,
because only object storage is trusted.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import clock
from ..cluster.replication import ReplicaSet, Replicator
from ..config import Settings
from ..errors import MemoturnError, NotFound, PreconditionFailed, Unavailable
from ..metrics import NodeMetrics
from ..names import (
    DATABASES_PREFIX,
    DEFAULT_BRANCH,
    branch_of_prefix,
    check_branch_name,
    check_database_name,
    database_of_prefix,
    database_prefix,
    gc_state_key,
    manifest_key,
)
from ..sql.worker import SqlWorkers
from ..storage import store as st
from ..storage.branch_log import BranchLog, Shipped
from ..storage.database import Closed, Database, Services
from ..storage.leases import LeaseTable, LocalLeaseTable
from ..storage.local_files import drop_local_files, restore_into, sidecar_path
from ..storage.manifest import Manifest, create_manifest, load_manifest
from ..storage.shipper import Shipper
from ..storage.store.cloud_url import redact
from .auth import Authenticator
from .store_usage import MEASURER_KEY, StoreUsageMeter
from .tiers import TierManager

if TYPE_CHECKING:
    from ..cluster.placement import Placement

T = TypeVar("T")
log = logging.getLogger("memoturn.node")


class Node:
    def __init__(
        self, settings: Settings, *, store: st.ObjectStore | None = None, leases: LeaseTable | None = None
    ) -> None:
        self.settings = settings
        self.store = store or st.open_store(settings.resolved_store_url)
        self.metrics = NodeMetrics()
        if leases is None and settings.etcd_endpoints:
            from ..cluster.etcd_client import EtcdSecurity
            from ..cluster.etcd_leases import EtcdLeaseTable

            leases = EtcdLeaseTable(
                settings.etcd_endpoints,
                settings.node_id,
                url=settings.resolved_advertise_url,
                ttl=settings.lease_ttl_seconds,
                prefix=settings.etcd_prefix,
                capacity={"max_hot": settings.max_hot, "max_disk_bytes": settings.max_disk_bytes},
                metrics=self.metrics,
                security=EtcdSecurity.from_settings(settings),
            )
        self.leases = leases or LocalLeaseTable()
        self.placement: Placement | None = None
        self.auth = Authenticator(self.store, settings.admin_token, settings.tokens)
        self.replicator = Replicator(settings, self.metrics, lambda: self.placement)
        self.replicas = ReplicaSet(self.store, settings, self.metrics)
        self.shipper = Shipper(self.store, settings, self.metrics, on_shipped=self._offer_to_replicas)
        self.services = Services(self.store, self.leases, settings, self.metrics, self.shipper)
        self.sql_workers = SqlWorkers(
            settings.sql_workers,
            settings.statement_timeout_seconds,
            max_txn_bytes=settings.max_txn_bytes,
            max_result_bytes=settings.max_body_bytes,
        )
        self.tiers = TierManager(self, settings, self.metrics)
        self.store_usage = StoreUsageMeter(
            self.store, self.metrics, settings.store_usage_interval_seconds, elected=self._measures_store
        )
        self._lock = threading.Lock()
        self._hot: OrderedDict[str, Database] = OrderedDict()
        # Striped locks serialise opening and cold eviction per branch without a per-branch entry.
        self._gates = [threading.Lock() for _ in range(4096)]
        self.started = False
        self._store_problem: str | None = None
        self._store_probed_at = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Node:
        if (problem := self.probe_store()) is not None:
            where = redact(self.store.url)
            log.warning("the object store %s cannot be used: %s; not ready until it can", where, problem)
        shutil.rmtree(self.settings.cache_dir, ignore_errors=True)
        os.makedirs(self.settings.cache_dir, exist_ok=True)
        self.leases.start()
        etcd = getattr(self.leases, "etcd", None)
        if etcd is not None:
            from ..cluster.placement import Placement  # etcd's client, only for a cluster

            self.placement = Placement(etcd, self.settings.etcd_prefix).start()
        self.replicator.start()
        self.shipper.start()
        self.tiers.start()
        self.store_usage.start()
        self.started = True
        return self

    def _measures_store(self) -> bool:
        """Whether this node is the one that lists the store for its usage (alone, it always is)."""
        if self.placement is None:
            return True
        from ..cluster.placement import rendezvous  # only for a cluster, as Placement above

        live = sorted(self.placement.live_nodes())
        return not live or rendezvous(MEASURER_KEY, live)[0] == self.settings.node_id

    def stop(self, timeout: float = 30.0) -> bool:
        """Ship every pending segment, close every database, release ownership."""
        self.store_usage.stop()
        self.tiers.stop()
        self.sql_workers.close()
        done = self.shipper.ship_all(timeout)
        self.shipper.stop()
        self.replicator.stop()
        self.replicas.close()
        if self.placement is not None:
            self.placement.close()
        for db in self.hot_databases():
            db.close(force=True, release=False)
        with self._lock:
            self._hot.clear()
        self.leases.close()  # revokes the lease: every ownership of this node goes at once
        self.started = False
        return done

    def hot_databases(self) -> list[Database]:
        with self._lock:
            return list(self._hot.values())

    STORE_PROBE_SECONDS = 5.0

    def probe_store(self) -> str | None:
        """Reach the object store once (a one-key listing); the cause when it cannot be used, else None.

        A wrong key, a missing bucket, a denied permission or an unreachable endpoint each
        answer with their own cause, which readiness reports until the store answers.
        """
        try:
            self.store.list(DATABASES_PREFIX, limit=1)
        except st.StoreError as exc:
            self._store_problem = str(exc) or type(exc).__name__
        else:
            self._store_problem = None
        self._store_probed_at = time.monotonic()
        return self._store_problem

    def ready(self) -> tuple[bool, str]:
        if not self.started:
            return False, "node not started"
        if not self.leases.healthy():
            return False, "writer lease not held"
        since_probe = time.monotonic() - self._store_probed_at
        if self._store_problem is not None and since_probe >= self.STORE_PROBE_SECONDS:
            self.probe_store()
        elif self.shipper.store_down and since_probe >= 1.0 and self.probe_store() is None:
            self.shipper.store_reachable()
        if self._store_problem is not None:
            return False, f"object store unusable: {self._store_problem}"
        if self.shipper.store_down:
            return False, "object store unavailable"
        return True, "ok"

    # -- catalogue -----------------------------------------------------------------------

    def create_database(self, name: str) -> Manifest:
        """Create a database (its ``main`` branch manifest): a metadata write, no file I/O."""
        check_database_name(name)
        manifest = Manifest(database=name, branch=DEFAULT_BRANCH)
        create_manifest(self.store, manifest)
        return manifest

    def list_databases(
        self, *, limit: int = 100, cursor: str | None = None, prefix: str = ""
    ) -> tuple[list[str], str | None]:
        page = self.store.list(
            DATABASES_PREFIX + prefix,
            delimiter="/",
            start_after=database_prefix(cursor) if cursor else None,
            limit=limit,
        )
        names = [database_of_prefix(p) for p in page.prefixes]
        return names, (names[-1] if page.next_cursor and names else None)

    def describe(self, name: str, branch: str = DEFAULT_BRANCH) -> dict[str, Any]:
        check_database_name(name)
        check_branch_name(branch)
        manifest, _ = load_manifest(self.store, name, branch)
        key = f"{name}/{branch}"
        with self._lock:
            db = self._hot.get(key)
        path = self._path(name, branch)
        tier = "hot" if db else ("warm" if os.path.exists(sidecar_path(path)) else "cold")
        return {
            "name": name,
            "branch": branch,
            "tier": tier,
            "head_txid": db.head_txid if db else manifest.head_txid,
            "shipped_txid": db.shipped_txid if db else manifest.head_txid,
            "epoch": manifest.epoch,
            "generation": manifest.generation,
            "snapshots": len(manifest.snapshots),
            "segments": len(manifest.segments),
            "created_at": manifest.created_at,
            "updated_at": manifest.updated_at,
        }

    def delete_database(self, name: str) -> None:
        check_database_name(name)
        load_manifest(self.store, name, DEFAULT_BRANCH)  # 404 if absent
        with self._lock:
            victims = [k for k in self._hot if k.startswith(name + "/")]
            dbs = [self._hot.pop(k) for k in victims]
        for db in dbs:
            db.fence("database deleted")
            db.close(force=True)
            drop_local_files(db.path)
        for prefix in self.store.list(database_prefix(name), delimiter="/").prefixes:
            self.store.delete(manifest_key(name, branch_of_prefix(name, prefix)))
        self.store.delete_prefix(database_prefix(name))
        self.store.delete(gc_state_key(name))
        shutil.rmtree(os.path.join(self.settings.cache_dir, name), ignore_errors=True)

    # -- access --------------------------------------------------------------------------

    def read(
        self,
        name: str,
        fn: Callable[[Any], T],
        *,
        branch: str = DEFAULT_BRANCH,
        min_txid: int | None = None,
        replica: bool = False,
    ) -> tuple[T, int]:
        """A primary read, or with ``replica=True`` (and another node owning the branch) a
        bounded-stale read from this node's replica copy."""
        if replica and self.leases.shared:
            check_database_name(name)
            check_branch_name(branch)
            with self._lock:
                db = self._hot.get(f"{name}/{branch}")
            if db is None or not db.owned:
                return self.replicas.read(name, branch, fn, min_txid)
        for _ in range(3):
            db = self.open(name, branch)
            if min_txid is not None and db.head_txid < min_txid:
                if not db.wait_for_txid(min_txid, self.settings.min_txid_wait_seconds):
                    raise PreconditionFailed(
                        f"{name}/{branch} is at txid {db.head_txid}, below Memoturn-Min-Txid {min_txid}",
                        type="min-txid-not-reached",
                        txid=db.head_txid,
                    )
            try:
                return db.read(fn)
            except Closed:
                continue
        raise Unavailable(f"{name}/{branch} kept closing under the request; retry")

    def kv_get(
        self, name: str, key: str, *, branch: str = DEFAULT_BRANCH, min_txid: int | None = None
    ) -> tuple[Any, int]:
        """A primary KV read through the handle's read cache (never older than the head)."""
        from ..data import kv

        db = self.open(name, branch)
        if (hit := self._kv_cache_hit(db, key, min_txid)) is not None:
            return hit
        item, txid = self.read(name, lambda c: kv.get(c, key), branch=branch, min_txid=min_txid)
        db.kv_cache.put(key, item, txid)
        return item, txid

    def kv_cached(
        self, name: str, key: str, *, branch: str = DEFAULT_BRANCH, min_txid: int | None = None
    ) -> tuple[Any, int] | None:
        """What :meth:`kv_get` would answer, if the branch is hot and the key's cached entry is
        at the head; else None. No I/O and no waiting, so the event loop may call it."""
        with self._lock:
            db = self._hot.get(f"{name}/{branch}")
            if db is not None:
                self._hot.move_to_end(f"{name}/{branch}")  # recency, as open() records it
        return None if db is None else self._kv_cache_hit(db, key, min_txid)

    def kv_get_nowait(
        self, name: str, key: str, *, branch: str = DEFAULT_BRANCH, min_txid: int | None = None
    ) -> tuple[Any, int] | None:
        """What :meth:`kv_get` would answer, read at once from a hot, owned branch whose lock is
        free and whose head has reached ``min_txid`` (a local SQLite read, no waiting); else None.
        Spares the event loop's caller the thread hand-off, which cost more than the read."""
        from ..data import kv

        if (hit := self.kv_cached(name, key, branch=branch, min_txid=min_txid)) is not None:
            return hit
        with self._lock:
            db = self._hot.get(f"{name}/{branch}")
        if db is None or (min_txid is not None and db.head_txid < min_txid):
            return None
        read = db.read_nowait(lambda c: kv.get(c, key))
        if read is not None:
            db.kv_cache.put(key, *read)
        return read

    def _kv_cache_hit(self, db: Database, key: str, min_txid: int | None) -> tuple[Any, int] | None:
        fresh = not db.fenced and not db.closed and (not self.leases.shared or (db.owned and self.leases.healthy()))
        hit = db.kv_cache.get(key) if fresh else None
        if hit is not None and hit[1] == db.head_txid and (min_txid is None or hit[1] >= min_txid):
            item = hit[0]
            if item is None or item["expires_at"] is None or item["expires_at"] > clock.now():
                self.metrics.kv_cache_hits.inc()
                return item, hit[1]
        return None

    def serves_replica(self, name: str, branch: str = DEFAULT_BRANCH) -> bool:
        """Whether a replica read of this branch is answered from this node's replica copy."""
        if not self.leases.shared:
            return False
        with self._lock:
            db = self._hot.get(f"{name}/{branch}")
        return db is None or not db.owned

    def write(
        self,
        name: str,
        fn: Callable[..., T],  # fn(conn); fn(path, captured) when external
        *,
        branch: str = DEFAULT_BRANCH,
        durable: bool | None = None,
        transaction: bool = True,
        external: bool = False,
    ) -> tuple[T, int]:
        durable = self.settings.durability == "durable" if durable is None else durable
        for _ in range(3):
            db = self.open(name, branch)
            try:
                return db.write(fn, durable=durable, transaction=transaction, external=external)
            except Closed:
                continue
        raise Unavailable(f"{name}/{branch} kept closing under the request; retry")

    def sql(
        self,
        name: str,
        statements: list[tuple[str, Any]],
        *,
        branch: str = DEFAULT_BRANCH,
        durable: bool | None = None,
        transaction: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        """Run a batch of user SQL (screened first) in an SQL worker, under its deadline."""
        from ..sql.execute import bind_statement, screen

        autocommit = screen(statements)
        statements = [bind_statement(sql, params) for sql, params in statements]  # plain values for the pipe
        try:
            return self.write(
                name,
                lambda path, captured: self.sql_workers.run(
                    path, statements, transaction=transaction and not autocommit, captured=captured
                ),
                branch=branch,
                durable=durable,
                external=True,
            )
        except MemoturnError as exc:
            if exc.type == "statement-timeout":
                self.metrics.statement_timeouts.inc()
            raise

    def compact(self, name: str, branch: str = DEFAULT_BRANCH) -> int:
        """Write a snapshot at the head now (restore then needs no segment replay); its txid."""
        db = self.open(name, branch)
        if db.epoch is None:
            db.write(lambda c: None, durable=False)  # take ownership: snapshots carry the epoch
        self.shipper.compact(db.log)
        return max((s.txid for s in db.manifest.snapshots), default=0)

    def open(self, name: str, branch: str = DEFAULT_BRANCH) -> Database:
        """The hot handle of a branch, restoring or re-opening it if needed."""
        key = f"{name}/{branch}"
        with self._lock:
            db = self._hot.get(key)
            if db is not None and not db.closed and not db.fenced:
                self._hot.move_to_end(key)
                return db
        with self.gate(key):
            with self._lock:
                db = self._hot.get(key)
                if db is not None and not db.closed and not db.fenced:
                    return db
                if db is not None:
                    del self._hot[key]
            check_database_name(name)
            check_branch_name(branch)
            db = self._materialise(name, branch)
            with self._lock:
                self._hot[key] = db
                self.metrics.hot.set(len(self._hot))
        self._shed_hot(key)
        return db

    def _shed_hot(self, opened: str) -> None:
        """Close the least recently opened handles beyond ``max_hot`` on the opener's thread.

        Bounds the hot tier by ``max_hot`` plus the handles still waiting to ship, however fast
        databases are opened: the tier thread alone falls behind under load (it competes for
        the GIL with every request thread), and the hot tier then grew with every database touched.
        """
        with self._lock:
            over = len(self._hot) - self.settings.max_hot
            victims = [(k, db) for k, db in itertools.islice(self._hot.items(), max(0, over)) if k != opened]
        for k, db in victims:
            if not db.has_pending:  # unshipped segments: the tier pass closes it once they ship
                self.evict_hot(k, db)

    def flush(self, name: str, branch: str = DEFAULT_BRANCH, timeout: float = 30.0) -> None:
        """Ship what this node committed on a branch but has not shipped yet (if it is hot here)."""
        with self._lock:
            db = self._hot.get(f"{name}/{branch}")
        if db is None or not db.has_pending:
            return
        deadline = time.monotonic() + timeout
        while db.has_pending and not db.fenced and time.monotonic() < deadline:
            self.shipper.ship(db.log, snapshot=False)
            if db.has_pending:
                time.sleep(0.05)
        if db.has_pending:
            raise Unavailable(f"{name}/{branch}: could not ship pending commits", type="store-unavailable")

    def drop_local(self, name: str, branch: str) -> None:
        """Forget a branch on this node (it was deleted or expired)."""
        key = f"{name}/{branch}"
        with self._lock:
            db = self._hot.pop(key, None)
            self.metrics.hot.set(len(self._hot))
        if db is not None:
            db.fence("branch deleted")
            db.close(force=True)
        drop_local_files(self._path(name, branch))

    def gate(self, key: str) -> threading.Lock:
        """The lock that serialises opening and cold eviction of one branch."""
        return self._gates[hash(key) % len(self._gates)]

    def is_hot(self, key: str) -> bool:
        with self._lock:
            return key in self._hot

    def _path(self, name: str, branch: str) -> str:
        return os.path.join(self.settings.cache_dir, name, branch + ".db")

    def _materialise(self, name: str, branch: str) -> Database:
        manifest, etag = load_manifest(self.store, name, branch)
        if manifest.expires_at is not None and manifest.expires_at <= clock.now():
            raise NotFound(f"branch {branch!r} of {name!r} has expired", type="branch-expired")
        path = self._path(name, branch)
        if not self.tiers.reuse_warm(f"{name}/{branch}", path, manifest):
            t0 = time.perf_counter()
            restore_into(self.store, manifest, path)
            self.metrics.restores.inc()
            self.metrics.restore_seconds.observe(time.perf_counter() - t0)
        return Database(self.services, name, branch, path, manifest, etag)

    def _offer_to_replicas(self, log: BranchLog, shipped: Shipped) -> None:
        self.replicator.offer(
            log.name, log.branch, shipped.data, shipped.first_txid, shipped.last_txid, log.appended_txid
        )

    def evict_hot(self, key: str, db: Database) -> bool:
        """Close a hot database (hot -> warm); False if it still has unshipped segments."""
        if not db.close():
            return False
        with self._lock:
            if self._hot.get(key) is db:
                del self._hot[key]
            self.metrics.hot.set(len(self._hot))
        self.tiers.became_warm(key, db.path)
        self.metrics.evictions.labels("warm").inc()
        return True

    def hot_items(self) -> list[tuple[str, Database]]:
        with self._lock:
            return list(self._hot.items())
