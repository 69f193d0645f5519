"""Blocking access to etcd (through the asyncio client aetcd) from the node's threads.

The node is threaded; aetcd is asyncio. :class:`EtcdClient` owns one event loop in a daemon
thread and runs coroutines on it with a deadline. Any failure to reach etcd in time becomes
:class:`memoturn.errors.Unavailable` (HTTP 503), never a hang.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aetcd

from ..errors import Unavailable
from ..netaddr import parse_host_port

T = TypeVar("T")


def parse_endpoint(endpoints: str) -> tuple[str, int]:
    """``(host, port)`` of the first of comma-separated ``HOST:PORT`` endpoints (``http://`` allowed)."""
    return parse_host_port(endpoints.split(",")[0], what="etcd endpoint", allow_scheme=True)


class EtcdClient:
    def __init__(self, endpoints: str, *, timeout: float = 3.0) -> None:
        self.host, self.port = parse_endpoint(endpoints)
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="memoturn-etcd", daemon=True)
        self._thread.start()
        self.client: aetcd.Client = self.run(self._make_client())

    async def _make_client(self) -> aetcd.Client:
        return aetcd.Client(host=self.host, port=self.port, timeout=max(1, int(self.timeout)))

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the etcd loop; :class:`Unavailable` if etcd does not answer in time."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]  # an Awaitable from aetcd is a coroutine at run time
        try:
            return future.result(timeout if timeout is not None else self.timeout + 1)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Unavailable(
                f"etcd at {self.host}:{self.port} did not answer in time", type="etcd-unavailable"
            ) from None
        except aetcd.exceptions.ClientError as exc:
            raise Unavailable(
                f"etcd at {self.host}:{self.port} failed: {type(exc).__name__}: {exc}", type="etcd-unavailable"
            ) from None

    def call(self, fn: Callable[[aetcd.Client], Awaitable[T]], timeout: float | None = None) -> T:
        async def _go() -> T:
            return await fn(self.client)

        return self.run(_go(), timeout)

    def spawn(self, coro: Awaitable[Any]) -> concurrent.futures.Future[Any]:
        """Start a background coroutine on the etcd loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]  # aetcd's awaitables are coroutines at run time

    def close(self) -> None:
        try:
            self.run(self.client.close(), timeout=2)
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
