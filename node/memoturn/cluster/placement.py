"""Where each branch lives: a cache of live nodes and branch owners, fed by an etcd watch.

The gateway asks :meth:`Placement.route` for every request; it never queries etcd per
request. The cache loads ``/nodes/`` and ``/owners/`` once, then follows one watch on the
whole prefix from the next revision; when the watch breaks it reloads and watches again.
A branch without an owner goes to the node that rendezvous hashing ranks first among live
nodes, so every gateway picks the same node without talking to the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Set as AbstractSet
from typing import Any

from .etcd_client import EtcdClient, cancelled_from_outside

log = logging.getLogger("memoturn.placement")


def rendezvous(key: str, nodes: list[str]) -> list[str]:
    """``nodes`` ranked for ``key`` by highest random weight (stable, minimal reshuffling)."""

    def weight(node: str) -> int:
        return int.from_bytes(hashlib.blake2b(f"{key}\0{node}".encode(), digest_size=8).digest(), "big")

    return sorted(nodes, key=weight, reverse=True)


def _name(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class Placement:
    def __init__(self, etcd: EtcdClient, prefix: str = "/memoturn") -> None:
        self.etcd = etcd
        self.prefix = prefix.rstrip("/")
        self.nodes: dict[str, dict[str, Any]] = {}
        self.owners: dict[str, str] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._closed = False
        self._task: Any = None
        #: How often an idle watch checks that its connection is still the client's.
        self.check_seconds = 1.0

    def start(self, timeout: float = 10.0) -> Placement:
        self._task = self.etcd.spawn(self._follow())
        self._ready.wait(timeout)
        return self

    def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()

    # -- queries -------------------------------------------------------------------------

    def live_nodes(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.nodes)

    def owner(self, key: str) -> str | None:
        with self._lock:
            return self.owners.get(key)

    def route(self, key: str | None, exclude: AbstractSet[str] = frozenset()) -> dict[str, Any] | None:
        """The node to send a request for ``key`` to (owner first, else rendezvous)."""
        with self._lock:
            nodes = {n: info for n, info in self.nodes.items() if n not in exclude}
            owner = self.owners.get(key) if key else None
        if not nodes:
            return None
        if owner in nodes:
            return nodes[owner]
        ranked = rendezvous(key or "", sorted(nodes))
        return nodes[ranked[0]]

    def replicas(self, key: str, owner: str | None, count: int) -> list[dict[str, Any]]:
        """The ``count`` nodes after the owner in ``key``'s rendezvous order."""
        with self._lock:
            nodes = dict(self.nodes)
        ranked = [n for n in rendezvous(key, sorted(nodes)) if n != owner]
        return [nodes[n] for n in ranked[:count]]

    def refresh_owner(self, key: str) -> str | None:
        """Read one owner straight from etcd (after a not-owner answer)."""
        result = self.etcd.call(lambda c: c.get(f"{self.prefix}/owners/{key}".encode()))
        with self._lock:
            if result is None:
                self.owners.pop(key, None)
                return None
            value: str = (result[0] if isinstance(result, tuple) else result.value).decode()
            self.owners[key] = value
            return value

    # -- the watch -----------------------------------------------------------------------

    def _apply(self, key: bytes, value: bytes | None) -> None:
        k = key.decode()[len(self.prefix) :]
        with self._lock:
            if k.startswith("/nodes/"):
                node_id = k[len("/nodes/") :]
                if value is None:
                    self.nodes.pop(node_id, None)
                else:
                    self.nodes[node_id] = json.loads(value)
            elif k.startswith("/owners/"):
                branch = k[len("/owners/") :]
                if value is None:
                    self.owners.pop(branch, None)
                else:
                    self.owners[branch] = value.decode()

    async def _load(self) -> int:
        client = self.etcd.client
        result = await client.get_prefix(f"{self.prefix}/".encode())
        with self._lock:
            self.nodes.clear()
            self.owners.clear()
        revision = 0
        for item in result:
            value, meta = item if isinstance(item, tuple) else (item.value, item)
            self._apply(meta.key, value)
            revision = max(revision, int(meta.mod_revision))
        header = getattr(result, "header", None)
        if header is not None:
            revision = max(revision, int(header.revision))
        return revision

    async def _watch(self, revision: int) -> None:
        """Apply watch events after ``revision`` until the stream ends (then the caller reloads).

        The stream also counts as ended when the client has moved to another connection since
        it was opened (``generation``): a watch on a dropped channel may never be told so, and a
        cache that silently stops following would route to dead owners forever.
        """
        client = self.etcd.client
        generation = getattr(client, "generation", 0)
        watch = await client.watch_prefix(f"{self.prefix}/".encode(), start_revision=revision + 1)
        events = watch.__aiter__()
        pending: asyncio.Future[Any] = asyncio.ensure_future(events.__anext__())
        try:
            while not self._closed:
                done, _ = await asyncio.wait({pending}, timeout=self.check_seconds)
                if not done:
                    if getattr(client, "generation", 0) != generation:
                        log.info("placement watch: etcd connection replaced; reloading")
                        return
                    continue
                if pending.cancelled():  # torn down with its channel
                    return
                try:
                    event = pending.result()
                except StopAsyncIteration:
                    return
                kind = getattr(event.kind, "value", event.kind)
                self._apply(event.kv.key, None if str(kind).lower().endswith("delete") else event.kv.value)
                pending = asyncio.ensure_future(events.__anext__())
        finally:
            if not pending.done():
                pending.cancel()
            try:
                await asyncio.wait_for(watch.cancel(), 1.0)
            except Exception:  # noqa: BLE001 - the stream may already be gone
                pass

    async def _follow(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                revision = await self._load()
                self._ready.set()
                await self._watch(revision)
                delay = 0.1
                await asyncio.sleep(delay)  # the stream ended: reload, but never in a tight loop
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - reload and watch again
                if isinstance(exc, asyncio.CancelledError) and (self._closed or cancelled_from_outside()):
                    return
                log.warning("placement watch broke (%s); reloading in %.1fs", _name(exc), delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
