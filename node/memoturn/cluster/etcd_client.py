"""Blocking access to etcd (through the asyncio client aetcd) from the node's threads.

The node is threaded; aetcd is asyncio. :class:`EtcdClient` owns one event loop in a daemon
thread and runs coroutines on it with a deadline. Any failure to reach etcd in time becomes
:class:`memoturn.errors.Unavailable` (HTTP 503), never a hang.

**Every endpoint is used.** aetcd (1.0) dials one ``host:port``; the client here keeps the
whole list and talks to one member at a time. A call that fails with a connection error
(the member is down, unreachable, leaderless or does not answer within ``timeout``) closes
the channel and moves to the next endpoint; :meth:`EtcdClient.call` then retries on it, each
endpoint at most once, within the call's budget. Every etcd member serves every key and
every lease (a lease is cluster-wide: its keepalives may go to any member, a new leader
extends every lease on election), so moving keeps the lease and its keys. The client object
stays the same across moves, so the keepalive loop and the placement watch, which hold it,
follow (the watch breaks once and is reloaded, as after any etcd error).

**TLS and auth.** An ``https://`` endpoint, or a CA/certificate file in
:class:`EtcdSecurity`, dials TLS (aetcd only dials plaintext: ``connect`` is replaced here);
the client certificate answers etcd's ``--client-cert-auth``. A username and password
authenticate on every (re)connection; an expired token is renewed by reconnecting. With no
:class:`EtcdSecurity` given, the ``MEMOTURN_ETCD_*`` variables of the environment are used
(:class:`memoturn.config.EtcdAccessSettings`), so ``memoturnd`` and ``memoturn-gateway``
need nothing but those variables.

Wrong credentials or a refused certificate are configuration errors, not outages: the first
connection (in the constructor) raises :class:`EtcdConfigError` (a :class:`ValueError`, which
both commands print as one line), and later calls say so in their :class:`Unavailable`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aetcd
import grpc  # type: ignore[import-untyped]  # grpcio ships no types (aetcd's transport)
from aetcd import exceptions as etcd_errors
from aetcd import rpc, watcher

from ..config import EtcdAccessSettings
from ..errors import Unavailable
from ..netaddr import parse_host_port

T = TypeVar("T")
log = logging.getLogger("memoturn.etcd")

#: After one of these the member is given up and the next endpoint is used.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    etcd_errors.ConnectionFailedError,
    etcd_errors.ConnectionTimeoutError,
    TimeoutError,
)
#: gRPC channel options: notice a silently dead member on long streams (the watch) within
#: ~15 s; etcd accepts pings every 5 s or slower (its --grpc-keepalive-min-time).
CHANNEL_OPTIONS = {
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2_000,
}
_TLS_WORDS = ("ssl", "tls", "handshake", "certificate", "x509", "tsi_", "unwrap failed")


class EtcdConfigError(ValueError):
    """etcd refused who we are (credentials, certificate) or the TLS settings are unusable."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    scheme: str | None = None

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.target}" if self.scheme else self.target


def parse_endpoints(endpoints: str) -> list[Endpoint]:
    """Every endpoint of comma-separated ``HOST:PORT``, ``http://HOST:PORT`` or ``https://HOST:PORT``."""
    out = []
    for part in (p.strip() for p in endpoints.split(",")):
        if not part:
            continue
        scheme = part.split("://", 1)[0].lower() if "://" in part else None
        if scheme not in (None, "http", "https"):
            raise ValueError(f"etcd endpoint must be HOST:PORT, http://HOST:PORT or https://HOST:PORT, got {part!r}")
        host, port = parse_host_port(part, what="etcd endpoint", allow_scheme=True)
        out.append(Endpoint(host, port, scheme))
    if not out:
        raise ValueError(f"etcd endpoints must be comma-separated HOST:PORT, got {endpoints!r}")
    return out


def parse_endpoint(endpoints: str) -> tuple[str, int]:
    """``(host, port)`` of the first of comma-separated endpoints (the first one dialled)."""
    first = parse_endpoints(endpoints)[0]
    return first.host, first.port


@dataclass(frozen=True)
class EtcdSecurity:
    """TLS files and etcd credentials; all unset: plaintext, no auth."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> EtcdSecurity:
        """From any settings object with ``etcd_ca_file`` … ``etcd_password`` (missing ones: unset)."""
        names = ("ca_file", "cert_file", "key_file", "username", "password")
        return cls(*(getattr(settings, f"etcd_{name}", None) or None for name in names))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EtcdSecurity:
        """From the ``MEMOTURN_ETCD_*`` variables of ``env`` (default ``os.environ``)."""
        return cls.from_settings(EtcdAccessSettings.from_env(env))

    @property
    def tls_files(self) -> bool:
        return bool(self.ca_file or self.cert_file or self.key_file)

    def check(self) -> None:
        """:class:`EtcdConfigError` naming the variable when the settings cannot work."""
        if bool(self.cert_file) != bool(self.key_file):
            raise EtcdConfigError("MEMOTURN_ETCD_CERT_FILE and MEMOTURN_ETCD_KEY_FILE go together: set both or neither")
        if bool(self.username) != bool(self.password):
            raise EtcdConfigError("MEMOTURN_ETCD_USERNAME and MEMOTURN_ETCD_PASSWORD go together: set both or neither")
        for variable, path in (
            ("MEMOTURN_ETCD_CA_FILE", self.ca_file),
            ("MEMOTURN_ETCD_CERT_FILE", self.cert_file),
            ("MEMOTURN_ETCD_KEY_FILE", self.key_file),
        ):
            if path and not os.access(path, os.R_OK):
                raise EtcdConfigError(f"{variable}: cannot read {path!r}")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials, the files read now (so a renewed certificate is used on the next connection)."""

        def read(path: str | None) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),  # None: gRPC's default roots
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )

    def __repr__(self) -> str:  # never the password
        return (
            f"EtcdSecurity(ca_file={self.ca_file!r}, cert_file={self.cert_file!r}, key_file={self.key_file!r}, "
            f"username={self.username!r}, password={'***' if self.password else None})"
        )


def cancelled_from_outside() -> bool:
    """Whether a ``CancelledError`` caught in the running task is that task's own cancellation.

    aetcd and gRPC tear a stream or a channel down by cancelling the tasks that wait on it, and
    that ``CancelledError`` can surface in a caller that nobody cancelled. A long-lived loop
    (the placement watch, the lease keepalive) that took it for its own shutdown would stop
    for good while the process stays up; it must exit only when it really was cancelled.
    """
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _describe(exc: BaseException) -> str:
    """One line for ``exc``: gRPC's ``failed to connect to all addresses; last error:`` dropped."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = (str(exc) or type(exc).__name__).replace("failed to connect to all addresses; last error: ", "")
    return f"{type(exc).__name__}: {text}"


def _looks_like_tls(text: str) -> bool:
    low = text.lower()
    return any(word in low for word in _TLS_WORDS)


def _auth_failed(exc: BaseException) -> bool:
    """etcd's answer to a wrong username or password (``authentication failed``)."""
    return isinstance(exc, etcd_errors.ClientError) and "authentication failed" in str(exc)


class FailoverClient(aetcd.Client):  # type: ignore[misc]  # aetcd has no type information
    """aetcd's client over several endpoints, optionally TLS; :meth:`failover` moves on.

    ``generation`` counts moves: a caller that saw a failure passes the generation it used,
    so concurrent failures of one dead member move only once.
    """

    # aetcd's own attributes that connect() uses (typed here: aetcd has no types).
    _connected: asyncio.Event
    _is_connecting: bool
    _connect_wait_timeout: float
    _timeout: int | None
    _username: str | None
    _password: str | None
    _options: dict[str, Any]

    def __init__(self, endpoints: list[Endpoint], security: EtcdSecurity, timeout: int) -> None:
        super().__init__(
            host=endpoints[0].host,
            port=endpoints[0].port,
            username=security.username,
            password=security.password,
            timeout=timeout,
            options=dict(CHANNEL_OPTIONS),
        )
        self.endpoints = endpoints
        self.security = security
        self.tls = security.tls_files or any(e.scheme == "https" for e in endpoints)
        self.index = 0
        self.generation = 0

    @property
    def current(self) -> Endpoint:
        return self.endpoints[self.index]

    async def connect(self) -> None:
        """aetcd's ``connect``, but dialling :attr:`current` and over TLS when configured."""
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task is connecting: wait for it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        self._is_connecting = True
        try:
            target = self.current.target
            options = list(self._options.items())
            if self.tls:
                channel = rpc.secure_channel(target, self.security.channel_credentials(), options=options)
            else:
                channel = rpc.insecure_channel(target, options=options)
            self.channel = channel
            if self._username is not None and self._password is not None:
                self.auth_stub = rpc.AuthStub(channel)
                request = rpc.AuthenticateRequest(name=self._username, password=self._password)
                try:
                    reply = await self.auth_stub.Authenticate(request, timeout=self._timeout)
                except rpc.AioRpcError as exc:
                    self.channel = None
                    await channel.close()
                    etcd_errors._handle_exception(exc)  # raises the matching aetcd error
                self.metadata = (("token", reply.token),)
            self.kvstub = rpc.KVStub(channel)
            self.clusterstub = rpc.ClusterStub(channel)
            self.leasestub = rpc.LeaseStub(channel)
            self.maintenancestub = rpc.MaintenanceStub(channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(channel), timeout=self._timeout, metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False

    async def failover(self, generation: int, reason: str, *, move: bool = True) -> None:
        """Close the channel and, with ``move``, go to the next endpoint (unless someone already did)."""
        if generation != self.generation:
            return
        self.generation += 1
        # Shielded: a caller's deadline that cancels it half-way would leave the old watcher's
        # subscribers (the placement watch) never told that their stream is gone.
        await asyncio.shield(self._drop(reason, move=move))

    async def _drop(self, reason: str, *, move: bool) -> None:
        failed = self.current
        try:
            await self.close()
        except Exception:  # noqa: BLE001 - the channel is being dropped anyway
            self._init_channel_attrs()
            self._connected.clear()
        if move:
            self.index = (self.index + 1) % len(self.endpoints)
            self._host, self._port = self.current.host, self.current.port
            log.warning("etcd %s failed (%s); using %s next", failed, reason, self.current)
        else:
            log.info("etcd %s: reconnecting (%s)", failed, reason)


def _with_failover(name: str) -> Callable[..., Any]:
    """A coroutine method of aetcd.Client that moves to the next endpoint on a connection error
    (callers that use the client directly, such as the placement watch, then retry there)."""
    method = getattr(aetcd.Client, name)

    async def wrapper(self: FailoverClient, *args: Any, **kwargs: Any) -> Any:
        generation = self.generation
        try:
            return await method(self, *args, **kwargs)
        except CONNECTION_ERRORS as exc:
            await self.failover(generation, _describe(exc))
            raise
        except etcd_errors.UnauthenticatedError as exc:
            await self.failover(generation, _describe(exc), move=False)  # a new token on the next call
            raise

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


for _name in (
    "get",
    "get_prefix",
    "get_range",
    "get_all",
    "put",
    "delete",
    "delete_prefix",
    "delete_range",
    "replace",
    "watch",
    "watch_prefix",
    "transaction",
    "lease",
    "revoke_lease",
    "refresh_lease",
    "get_lease_info",
    "status",
):
    setattr(FailoverClient, _name, _with_failover(_name))


class EtcdClient:
    """One etcd client (one loop thread) over every endpoint of ``endpoints``.

    ``timeout`` bounds one attempt on one member; a call (:meth:`call`) may try up to two
    members, or every member when they fail at once (refused connections), within
    :attr:`budget` seconds. ``security`` None: from the ``MEMOTURN_ETCD_*`` environment.
    """

    def __init__(
        self, endpoints: str, *, timeout: float = 3.0, security: EtcdSecurity | None = None, probe: bool = True
    ) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.security = EtcdSecurity.from_env() if security is None else security
        self.security.check()
        self.host, self.port = self.endpoints[0].host, self.endpoints[0].port
        self.timeout = timeout
        self.budget = timeout * min(2, len(self.endpoints)) + 1
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="memoturn-etcd", daemon=True)
        self._thread.start()
        self.client: FailoverClient = self.run(self._make_client())
        if probe:
            try:
                self._probe()
            except BaseException:
                self.close()
                raise

    async def _make_client(self) -> FailoverClient:
        return FailoverClient(self.endpoints, self.security, max(1, int(self.timeout)))

    def _probe(self) -> None:
        """Connect once: wrong credentials or a refused certificate raise :class:`EtcdConfigError`;
        an etcd that cannot be reached now is left to later calls (it may come up)."""
        try:
            self.call(lambda c: c.status())
        except Unavailable as exc:
            if getattr(exc, "config_error", False):
                raise EtcdConfigError(exc.detail) from None
            log.warning("%s", exc.detail)

    @property
    def where(self) -> str:
        return ",".join(str(e) for e in self.endpoints)

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the etcd loop; :class:`Unavailable` if etcd does not answer in time."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]  # an Awaitable from aetcd is a coroutine at run time
        try:
            return future.result(timeout if timeout is not None else self.budget + 1)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Unavailable(f"etcd at {self.where} did not answer in time", type="etcd-unavailable") from None
        except etcd_errors.ClientError as exc:
            raise self._unavailable([f"{self.client.current}: {_describe(exc)}"], exc) from None

    def _unavailable(self, errors: list[str], last: BaseException) -> Unavailable:
        """The error a caller sees, with a hint when it is a configuration problem."""
        text = "; ".join(errors)
        config_error = False
        if _auth_failed(last):
            config_error = True
            text += (
                f" — etcd rejected user {self.security.username!r}: check MEMOTURN_ETCD_USERNAME and "
                "MEMOTURN_ETCD_PASSWORD"
            )
        elif isinstance(last, etcd_errors.UnauthenticatedError) or "permission denied" in text:
            config_error = True
            text += (
                " — etcd refused the request: with etcd's auth on, set MEMOTURN_ETCD_USERNAME and "
                "MEMOTURN_ETCD_PASSWORD of a user whose role may read and write the prefix"
            )
        elif _looks_like_tls(text):
            config_error = True
            text += (
                " — the TLS handshake failed: check MEMOTURN_ETCD_CA_FILE (the CA of etcd's server certificate) "
                "and MEMOTURN_ETCD_CERT_FILE / MEMOTURN_ETCD_KEY_FILE (etcd's --client-cert-auth needs them)"
            )
        elif not self.client.tls and "socket closed" in text.lower():
            text += " — if etcd serves TLS, use https:// endpoints and MEMOTURN_ETCD_CA_FILE"
        error = Unavailable(f"etcd at {self.where} failed: {text}", type="etcd-unavailable")
        error.config_error = config_error  # type: ignore[attr-defined]  # read by _probe
        return error

    async def attempt(
        self,
        fn: Callable[[FailoverClient], Awaitable[T]],
        *,
        timeout: float | None = None,
        attempt_timeout: float | None = None,
    ) -> T:
        """``fn(client)`` on the loop, moving to the next member on a connection error.

        Each endpoint is tried at most once (plus one re-authentication), each try at most
        ``attempt_timeout`` (default :attr:`timeout`), all of them within ``timeout`` (default
        :attr:`budget`). Raises :class:`Unavailable` naming every failure.
        """
        client = self.client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.budget if timeout is None else timeout)
        per_try = self.timeout if attempt_timeout is None else attempt_timeout
        errors: list[str] = []
        last: BaseException | None = None
        reauthenticated = False
        moves = 0
        while moves < len(client.endpoints):
            remaining = deadline - loop.time()
            if remaining <= 0.01:
                break
            generation, at = client.generation, client.current
            try:
                return await asyncio.wait_for(fn(client), min(remaining, per_try))
            except asyncio.CancelledError as exc:
                if cancelled_from_outside():
                    raise
                # A stream torn down under this call (see cancelled_from_outside): as a lost connection.
                errors.append(f"{at}: connection torn down")
                last = exc
                moves += 1
                await client.failover(generation, "connection torn down")
            except etcd_errors.UnauthenticatedError as exc:
                errors.append(f"{at}: {_describe(exc)}")
                last = exc
                if reauthenticated or not client._username:
                    break
                reauthenticated = True  # an expired or forgotten token: authenticate again, once
                await client.failover(generation, _describe(exc), move=False)
            except CONNECTION_ERRORS as exc:
                errors.append(f"{at}: {_describe(exc)}")
                last = exc
                moves += 1
                await client.failover(generation, _describe(exc))
            except etcd_errors.ClientError as exc:
                if client.generation == generation or _auth_failed(exc):
                    raise self._unavailable([f"{at}: {_describe(exc)}"], exc) from None
                # Our channel was closed under us by another caller's failover: try again.
                errors.append(f"{at}: {_describe(exc)}")
                last = exc
                moves += 1
        if last is None:
            raise Unavailable(f"etcd at {self.where} did not answer in time", type="etcd-unavailable")
        raise self._unavailable(errors, last)

    def call(self, fn: Callable[[FailoverClient], Awaitable[T]], timeout: float | None = None) -> T:
        """``fn(client)`` from a thread, with failover (:meth:`attempt`); :class:`Unavailable` on failure."""
        budget = self.budget if timeout is None else timeout
        return self.run(self.attempt(fn, timeout=budget), budget + 1)

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
