"""Writer leases in etcd: one lease per node, ownership keys attached to it.

Keys (under ``prefix``, default ``/memoturn``)::

    /nodes/{node_id}          JSON {id, url, capacity}, attached to the node's lease
    /owners/{db}/{branch}     node_id of the writer, attached to the owner's lease

* ``acquire`` is one transaction that creates the owner key only if it does not exist; the
  epoch is the revision at which it was created, which etcd only ever increases. A branch
  costs one key, not one lease: a node with a million branches holds one lease.
* The lease is refreshed every ``ttl/3`` seconds. :meth:`healthy` turns false once no
  refresh has succeeded for ``ttl - margin`` seconds (default margin ``ttl/3``): the node
  then refuses writes *before* etcd can expire the lease and hand its branches to
  another node (self-fencing).
* A refresh that fails on one etcd member moves to the next endpoint at once (each try at
  most ``ttl/6`` s, all of them within ``ttl/3`` s), and a failed round is retried every
  0.5 s rather than after a full interval: a lease is cluster-wide, so any member renews it,
  and losing one member of several costs no write (docs/cluster.md gives the window).
* If the lease did expire (etcd was unreachable for longer than the TTL, or the process was
  paused), the node takes a new lease and re-registers; :attr:`generation` increases so every
  open branch must re-acquire ownership (new epoch, manifest CAS) before its next write.
* ``revoke`` (graceful shutdown, or the operator on a dead pod) deletes every key of the
  node at once, so its branches can move in well under a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import NotOwner, Unavailable
from ..storage.leases import LeaseTable
from .etcd_client import EtcdClient, EtcdSecurity, cancelled_from_outside

log = logging.getLogger("memoturn.etcd")


class EtcdLeaseTable(LeaseTable):
    shared = True

    def __init__(
        self,
        endpoints: str,
        node_id: str,
        *,
        url: str = "",
        ttl: int = 15,
        margin: float | None = None,
        prefix: str = "/memoturn",
        capacity: dict[str, Any] | None = None,
        metrics: Any = None,
        security: EtcdSecurity | None = None,
    ) -> None:
        if ttl < 2:
            raise ValueError("lease TTL must be at least 2 seconds")
        # security None: the MEMOTURN_ETCD_* TLS and auth variables of the environment.
        self.etcd = EtcdClient(endpoints, security=security)
        self.node_id = node_id
        self.url = url
        self.ttl = ttl
        self.margin = ttl / 3 if margin is None else margin
        self.prefix = prefix.rstrip("/")
        self.capacity = capacity or {}
        self.metrics = metrics
        self.lease_id: int | None = None
        self.generation = 0
        self._renewed_at = 0.0
        self._lock = threading.Lock()
        self._closed = False
        self._keepalive: Any = None

    # -- keys ----------------------------------------------------------------------------

    def node_key(self, node_id: str) -> bytes:
        return f"{self.prefix}/nodes/{node_id}".encode()

    def owner_key(self, key: str) -> bytes:
        return f"{self.prefix}/owners/{key}".encode()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> EtcdLeaseTable:
        self._grant()
        self._keepalive = self.etcd.spawn(self._keepalive_loop())
        return self

    def _grant(self) -> None:
        """Take a new lease and register this node under it."""
        t0 = time.monotonic()

        async def go(client: Any) -> int:
            lease = await client.lease(self.ttl)
            info = json.dumps({"id": self.node_id, "url": self.url, "capacity": self.capacity, "since": time.time()})
            await client.put(self.node_key(self.node_id), info.encode(), lease=lease.id)
            granted: int = lease.id
            return granted

        lease_id = self.etcd.call(go)
        with self._lock:
            self.lease_id = lease_id
            self.generation += 1
            self._renewed_at = t0
        log.info("node %s holds etcd lease %x (generation %d)", self.node_id, lease_id, self.generation)

    async def _keepalive_loop(self) -> None:
        interval = max(0.2, self.ttl / 3)
        retry = min(interval, 0.5)
        renewed = True
        while not self._closed:
            await asyncio.sleep(interval if renewed else retry)
            if self._closed:
                return
            sent = time.monotonic()
            lease_id = self.lease_id
            renewed = False
            try:
                # Any member renews the lease: a failing one is left for the next endpoint at once.
                reply = await self.etcd.attempt(
                    self._refresh(lease_id), timeout=interval, attempt_timeout=max(0.2, interval / 2)
                )
                renewed = True
                if reply is None or reply.TTL <= 0:
                    log.warning("etcd lease %x expired; taking a new one", self.lease_id or 0)
                    if self.metrics:
                        self.metrics.lease_lost.inc()
                    await asyncio.get_running_loop().run_in_executor(None, self._grant)
                    continue
                with self._lock:
                    self._renewed_at = sent
                if self.metrics:
                    self.metrics.lease_renewals.inc()
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - keep renewing while etcd is away
                if isinstance(exc, asyncio.CancelledError) and (self._closed or cancelled_from_outside()):
                    raise
                renewed = False
                if self.metrics:
                    self.metrics.lease_renewal_failures.inc()
                log.warning("etcd lease renewal failed: %s", getattr(exc, "detail", exc))

    @staticmethod
    def _refresh(lease_id: int | None) -> Callable[[Any], Awaitable[Any]]:
        async def go(client: Any) -> Any:
            return await client.refresh_lease(lease_id)

        return go

    def healthy(self) -> bool:
        with self._lock:
            return not self._closed and time.monotonic() - self._renewed_at < self.ttl - self.margin

    def revoke(self) -> None:
        """Revoke the lease: every key of this node (registration, ownerships) goes at once."""
        if self.lease_id is not None:
            self.etcd.call(lambda c: c.revoke_lease(self.lease_id))

    def close(self) -> None:
        self._closed = True
        try:
            self.revoke()
        except Unavailable as exc:
            log.warning("could not revoke the lease on close (it will expire): %s", exc.detail)
        self.etcd.close()

    # -- ownership -----------------------------------------------------------------------

    def acquire(self, key: str, node_id: str, *, at_least: int) -> int:
        if not self.healthy():
            raise Unavailable("this node cannot renew its etcd lease; writes are refused", type="lease-lost")
        k = self.owner_key(key)
        me = node_id.encode()
        for _ in range(2):

            async def go(client: Any) -> tuple[bool, Any]:
                t = client.transactions
                outcome: tuple[bool, Any] = await client.transaction(
                    compare=[t.create(k) == 0],
                    success=[t.put(k, me, lease=self.lease_id)],
                    failure=[t.get(k)],
                )
                return outcome

            ok, responses = self.etcd.call(go)
            if ok:
                epoch = int(responses[0].response_put.header.revision)
                if epoch < at_least:
                    raise Unavailable(
                        f"etcd revision {epoch} is below the manifest epoch {at_least - 1} of {key}; "
                        "is this the etcd the store was written with?",
                        type="epoch-regression",
                    )
                return epoch
            current = responses[0][0][0] if responses and responses[0] else b""
            if current != me:
                raise NotOwner(
                    f"{key} is owned by node {current.decode(errors='replace')}", owner=current.decode(errors="replace")
                )
            # We own it from an earlier acquisition: release and take it again for a new epoch.
            self.release(key, node_id)
        raise NotOwner(f"{key}: could not take ownership")

    def release(self, key: str, node_id: str) -> None:
        k = self.owner_key(key)

        async def go(client: Any) -> Any:
            t = client.transactions
            return await client.transaction(compare=[t.value(k) == node_id.encode()], success=[t.delete(k)], failure=[])

        try:
            self.etcd.call(go)
        except Unavailable as exc:
            log.warning("could not release %s: %s", key, exc.detail)

    def owner(self, key: str) -> tuple[str, int] | None:
        result = self.etcd.call(lambda c: c.get(self.owner_key(key)))
        if result is None:
            return None
        value, meta = result if isinstance(result, tuple) else (result.value, result)
        return value.decode(), int(meta.create_revision)

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Registered live nodes: ``{node_id: {id, url, capacity}}``."""
        prefix = f"{self.prefix}/nodes/".encode()
        result = self.etcd.call(lambda c: c.get_prefix(prefix))
        out = {}
        for item in result:
            value = item[0] if isinstance(item, tuple) else item.value
            info = json.loads(value)
            out[info["id"]] = info
        return out
