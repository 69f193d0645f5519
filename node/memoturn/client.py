"""Python SDK: :class:`Memoturn` (sync) and :class:`AsyncMemoturn` (asyncio), over the HTTP API.

    from memoturn.client import Memoturn

    mt = Memoturn("http://127.0.0.1:7411")
    alice = mt.profile("acme", "alice")
    stored = alice.add("Alice prefers green tea", type="preference", subject="drink")
    hits = alice.recall("what does Alice drink?", min_txid=stored.txid)

* Every result carries the ``txid`` the server reported (``Memoturn-Txid``); pass it back as
  ``min_txid`` for read-your-writes, and ``read_from="replica"`` to allow a bounded-stale
  replica read.
* ``durability="durable"`` (per client or per call) waits until the write is in object
  storage.
* Transient answers — ``503`` and ``409 not-owner`` (an ownership move in progress) — are
  retried with exponential backoff (``retries`` times); connection errors are retried for
  reads only. Everything else raises :class:`ProblemError` with the problem's ``type``,
  ``status``, ``detail`` and ``txid``.
* ``https://`` URLs: the server's certificate is verified against ``verify`` — a CA bundle
  (PEM path; default the ``MEMOTURN_CA_FILE`` environment variable when set), ``True`` (httpx's
  default CAs) or ``False`` (no check). A certificate that fails is ``unreachable`` at once,
  not retried, with the reason (docs/security.md).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from .backoff import delays
from .errors import MemoturnError

_R = TypeVar("_R")  # what a call gives back: a Result (sync client) or a coroutine of one (async)
_RETRY_TYPES = {"not-owner", "lease-lost", "fenced", "store-unavailable", "no-route", "unavailable"}


class ProblemError(MemoturnError):
    """The server answered with a problem (or, as status 0 and type ``unreachable``, not at all)."""

    def __init__(self, status: int, type: str, detail: str, txid: int | None = None) -> None:
        super().__init__(detail, type=type, txid=txid)
        self.args = (f"{status} {type}: {detail}",)
        self.status, self.txid = status, txid

    @classmethod
    def from_response(cls, r: httpx.Response) -> ProblemError:
        """The problem a refusal describes (a body that is no problem is kept as its text)."""
        try:
            body = r.json()
            return cls(r.status_code, body.get("type", "error"), body.get("detail", r.text), body.get("txid"))
        except ValueError:
            return cls(r.status_code, "http-error", r.text or r.reason_phrase)


@dataclass
class Result:
    """A response body with the txid it was served at."""

    data: Any
    txid: int | None = None
    served_by: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclass
class _Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = False


def _headers(
    durability: str | None = None, min_txid: int | None = None, read_from: str | None = None
) -> dict[str, str]:
    h = {}
    if durability:
        h["Memoturn-Durability"] = durability
    if min_txid is not None:
        h["Memoturn-Min-Txid"] = str(min_txid)
    if read_from:
        h["Memoturn-Read"] = read_from
    return h


def _result(r: httpx.Response) -> Result:
    txid = r.headers.get("Memoturn-Txid")
    data = r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None
    return Result(data, int(txid) if txid and txid.isdigit() else None, r.headers.get("Memoturn-Served-By"))


def _retryable(r: httpx.Response) -> bool:
    """A refusal that says nothing was applied. A problem carrying a ``txid`` was committed
    (ownership lapsed, or not yet durable): its outcome is unknown, and a retry could apply it twice."""
    if r.status_code not in (409, 503):
        return False
    try:
        body = r.json()
    except ValueError:
        return r.status_code == 503
    if body.get("txid") is not None:
        return False
    return body.get("type") in _RETRY_TYPES or r.status_code == 503


def _connection_lost(r: httpx.Response) -> bool:
    """The gateway's ``502 outcome-unknown``: its connection to the node was lost after sending.
    For an idempotent call this is what a lost connection of our own is, and is retried as one
    (sending a KV put again leaves the same value)."""
    if r.status_code != 502:
        return False
    try:
        return bool(r.json().get("type") == "outcome-unknown")
    except (ValueError, AttributeError):
        return False


def _tls_verify(verify: str | bool | None) -> ssl.SSLContext | bool:
    """What httpx checks a server's certificate with (see the module's docstring)."""
    if verify is None:
        verify = os.environ.get("MEMOTURN_CA_FILE") or True
    if isinstance(verify, bool):
        return verify
    try:
        return ssl.create_default_context(cafile=verify)
    except OSError as exc:  # ssl.SSLError too: no certificate in the file
        reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
        raise ValueError(f"cannot use the CA bundle {verify}: {reason or exc}") from None


def transport_problem(url: str, exc: Exception) -> tuple[str, bool]:
    """The detail of a failed connection (naming the URL), and whether retrying is pointless (TLS refused)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"{url}: TLS certificate verification failed ({cause.verify_message}): "
                "pass verify= (or set MEMOTURN_CA_FILE to) the CA bundle that signed it",
                True,
            )
        if isinstance(cause, ssl.SSLError):
            hint = " (does it serve plain HTTP? use an http:// URL)" if url.startswith("https://") else ""
            return f"{url}: TLS handshake failed ({cause.reason or cause}){hint}", True
        cause = cause.__cause__ or cause.__context__
    if url.startswith("http://") and isinstance(exc, httpx.RemoteProtocolError):
        return f"{url}: {exc} (does it serve HTTPS? use an https:// URL)", False
    return f"{url}: {exc}", False


class _Client(Generic[_R]):
    """What both clients share: settings, retry decisions and the calls they make.

    A call is built once (a :class:`_Call`) and handed to ``_do``; the sync client's ``_do``
    answers a :class:`Result`, the async client's a coroutine of one, and ``_R`` carries that
    type through every method of the client and its scopes.
    """

    def __init__(self, url: str, token: str | None, retries: int, backoff: float, durability: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.durability = durability

    def _do(self, call: _Call) -> _R:
        raise NotImplementedError

    def _delays(self) -> Iterator[float | None]:
        """Backoff before each retry: ``retries`` delays, then None for the last attempt."""
        yield from delays(first=self.backoff, cap=2.0, retries=self.retries)
        yield None

    def _settle(self, call: _Call, r: httpx.Response | Exception, *, last: bool) -> Result | None:
        """The result of one attempt, or None to retry; raises what must not be retried."""
        if isinstance(r, Exception):
            detail, fatal = transport_problem(self.url, r)
            if not call.idempotent or last or fatal:
                raise ProblemError(0, "unreachable", detail) from None
            return None
        if r.status_code < 400:
            return _result(r)
        if not (_retryable(r) or (call.idempotent and _connection_lost(r))) or last:
            raise ProblemError.from_response(r)
        return None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def database(self, name: str, branch: str = "main") -> Database[_R]:
        return Database(self, name, branch)

    def profile(self, namespace: str, profile: str, branch: str = "main") -> Profile[_R]:
        return Profile(self, namespace, profile, branch)

    def health(self) -> _R:
        """The node's (or, through a gateway, a node's) health: ``status``, ``detail``, ``node_id``."""
        return self._do(_Call("GET", "/v1/health", idempotent=True))

    def create_database(self, name: str) -> _R:
        return self._do(_Call("POST", "/v1/databases", json={"name": name}))

    def list_databases(self, limit: int = 100, cursor: str | None = None) -> _R:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._do(_Call("GET", "/v1/databases", params=params, idempotent=True))

    def describe_database(self, name: str, branch: str = "main") -> _R:
        return self._do(_Call("GET", f"/v1/databases/{name}", params={"branch": branch}, idempotent=True))

    def delete_database(self, name: str) -> _R:
        return self._do(_Call("DELETE", f"/v1/databases/{name}"))


class Memoturn(_Client[Result]):
    """Synchronous client."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:7411",
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.05,
        durability: str | None = None,
        verify: str | bool | None = None,
    ) -> None:
        super().__init__(url, token, retries, backoff, durability)
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=self._auth(), verify=_tls_verify(verify))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Memoturn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _do(self, call: _Call) -> Result:
        for delay in self._delays():
            try:
                r: httpx.Response | Exception = self.http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=call.headers
                )
            except httpx.TransportError as exc:
                r = exc
            if (result := self._settle(call, r, last=delay is None)) is not None:
                return result
            time.sleep(delay or 0)
        raise AssertionError("unreachable")


class AsyncMemoturn(_Client[Coroutine[Any, Any, Result]]):
    """Asyncio client with the same methods, awaited: ``await mt.profile(...).recall(...)``."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:7411",
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.05,
        durability: str | None = None,
        verify: str | bool | None = None,
    ) -> None:
        super().__init__(url, token, retries, backoff, durability)
        self.http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, headers=self._auth(), verify=_tls_verify(verify)
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncMemoturn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _do(self, call: _Call) -> Result:
        for delay in self._delays():
            try:
                r: httpx.Response | Exception = await self.http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=call.headers
                )
            except httpx.TransportError as exc:
                r = exc
            if (result := self._settle(call, r, last=delay is None)) is not None:
                return result
            await asyncio.sleep(delay or 0)
        raise AssertionError("unreachable")


class _Scope(Generic[_R]):
    client: _Client[_R]

    def _durability(self, durability: str | None) -> str | None:
        return durability or self.client.durability


class Database(_Scope[_R]):
    """KV, SQL and branches of one database branch."""

    def __init__(self, client: _Client[_R], name: str, branch: str) -> None:
        self.client, self.name, self.branch = client, name, branch

    def _p(self) -> dict[str, str]:
        return {"branch": self.branch}

    def kv_put(self, key: str, value: Any, *, ttl_seconds: float | None = None, durability: str | None = None) -> _R:
        return self.client._do(
            _Call(
                "PUT",
                f"/v1/databases/{self.name}/kv/{key}",
                json={"value": value, "ttl_seconds": ttl_seconds},
                params=self._p(),
                headers=_headers(self._durability(durability)),
                idempotent=True,
            )
        )

    def kv_get(self, key: str, *, min_txid: int | None = None, read_from: str | None = None) -> _R:
        return self.client._do(
            _Call(
                "GET",
                f"/v1/databases/{self.name}/kv/{key}",
                params=self._p(),
                headers=_headers(min_txid=min_txid, read_from=read_from),
                idempotent=True,
            )
        )

    def kv_delete(self, key: str, *, durability: str | None = None) -> _R:
        return self.client._do(
            _Call(
                "DELETE",
                f"/v1/databases/{self.name}/kv/{key}",
                params=self._p(),
                headers=_headers(self._durability(durability)),
                idempotent=True,
            )
        )

    def kv_list(self, prefix: str = "", limit: int = 100, cursor: str | None = None) -> _R:
        params = {**self._p(), "prefix": prefix, "limit": limit, **({"cursor": cursor} if cursor else {})}
        return self.client._do(_Call("GET", f"/v1/databases/{self.name}/kv", params=params, idempotent=True))

    def sql(self, *statements: str | tuple[str, Any], transaction: bool = True, durability: str | None = None) -> _R:
        body = {
            "statements": [{"sql": s} if isinstance(s, str) else {"sql": s[0], "params": s[1]} for s in statements],
            "transaction": transaction,
        }
        return self.client._do(
            _Call(
                "POST",
                f"/v1/databases/{self.name}/sql",
                json=body,
                params=self._p(),
                headers=_headers(self._durability(durability)),
            )
        )

    # -- branches ----------------------------------------------------------------------

    def fork(
        self,
        name: str,
        *,
        txid: int | None = None,
        checkpoint: str | None = None,
        timestamp: float | None = None,
        ttl_seconds: float | None = None,
    ) -> _R:
        body = {
            "name": name,
            "parent": self.branch,
            "txid": txid,
            "checkpoint": checkpoint,
            "timestamp": timestamp,
            "ttl_seconds": ttl_seconds,
        }
        return self.client._do(
            _Call("POST", f"/v1/databases/{self.name}/branches", json={k: v for k, v in body.items() if v is not None})
        )

    def branches(self) -> _R:
        return self.client._do(_Call("GET", f"/v1/databases/{self.name}/branches", idempotent=True))

    def delete_branch(self) -> _R:
        return self.client._do(_Call("DELETE", f"/v1/databases/{self.name}/branches/{self.branch}"))

    def rewind(self, *, txid: int | None = None, checkpoint: str | None = None, timestamp: float | None = None) -> _R:
        body = {
            k: v for k, v in {"txid": txid, "checkpoint": checkpoint, "timestamp": timestamp}.items() if v is not None
        }
        return self.client._do(_Call("POST", f"/v1/databases/{self.name}/branches/{self.branch}/rewind", json=body))

    def undo_rewind(self) -> _R:
        return self.client._do(_Call("POST", f"/v1/databases/{self.name}/branches/{self.branch}/undo-rewind"))

    def checkpoint(self, name: str, txid: int | None = None) -> _R:
        body = {"name": name, **({"txid": txid} if txid is not None else {})}
        return self.client._do(
            _Call("POST", f"/v1/databases/{self.name}/branches/{self.branch}/checkpoints", json=body)
        )

    def checkpoints(self) -> _R:
        return self.client._do(
            _Call("GET", f"/v1/databases/{self.name}/branches/{self.branch}/checkpoints", idempotent=True)
        )

    def delete_checkpoint(self, name: str) -> _R:
        return self.client._do(_Call("DELETE", f"/v1/databases/{self.name}/branches/{self.branch}/checkpoints/{name}"))

    def set_policy(self, **policy: Any) -> _R:
        """snapshot_every_txids, keep_snapshots, retention_seconds, merge_segments_over."""
        return self.client._do(
            _Call("PUT", f"/v1/databases/{self.name}/branches/{self.branch}/policy", json=policy, idempotent=True)
        )

    def gc(self, *, grace_seconds: float | None = None, dry_run: bool = False) -> _R:
        body: dict[str, Any] = {
            "dry_run": dry_run,
            **({"grace_seconds": grace_seconds} if grace_seconds is not None else {}),
        }
        return self.client._do(_Call("POST", f"/v1/databases/{self.name}/gc", json=body))


def _walk(types: Sequence[str] | None, as_of: float | str | None, include_superseded: bool) -> dict[str, Any]:
    """The fields every relationship walk (path, subgraph) takes, only those given."""
    body: dict[str, Any] = {"include_superseded": include_superseded}
    if types:
        body["types"] = [*types]
    if as_of is not None:
        body["as_of"] = as_of
    return body


class Profile(_Scope[_R]):
    """Typed memories of one profile (the database ``{namespace}--{profile}``), on one of its
    branches (``main``, or a branch forked with :meth:`database` ``.fork(name)``)."""

    def __init__(self, client: _Client[_R], namespace: str, profile: str, branch: str = "main") -> None:
        self.client = client
        self.namespace, self.profile, self.branch = namespace, profile, branch
        self.base = f"/v1/namespaces/{namespace}/profiles/{profile}"

    def _p(self) -> dict[str, str]:
        """The branch query (none on main, so main's requests are as they always were)."""
        return {} if self.branch == "main" else {"branch": self.branch}

    def on_branch(self, branch: str) -> Profile[_R]:
        """This profile's memories on another branch of its database."""
        return Profile(self.client, self.namespace, self.profile, branch)

    def database(self) -> Database[_R]:
        """The profile's database on this branch, for branch operations: ``fork``, ``checkpoint``,
        ``rewind``, ``undo_rewind``, ``delete_branch``, ``branches``. (The name is the one
        ``memoturn.names.profile_database`` builds, which the SDK does not import.)"""
        return Database(self.client, f"{self.namespace}--{self.profile}", self.branch)

    def create(self) -> _R:
        """Create the profile's database now, if it does not exist (a first memory does too); its stats."""
        return self.client._do(_Call("PUT", self.base, params=self._p(), idempotent=True))

    def add(self, content: str, *, type: str = "fact", durability: str | None = None, **fields: Any) -> _R:
        body = {"content": content, "type": type, **{k: v for k, v in fields.items() if v is not None}}
        return self.client._do(
            _Call(
                "POST",
                self.base + "/memories",
                json=body,
                params=self._p(),
                headers=_headers(self._durability(durability)),
            )
        )

    def add_many(self, memories: list[dict[str, Any]], *, durability: str | None = None) -> _R:
        return self.client._do(
            _Call(
                "POST",
                self.base + "/memories/batch",
                json={"memories": memories},
                params=self._p(),
                headers=_headers(self._durability(durability)),
            )
        )

    def recall(
        self,
        query: str,
        *,
        limit: int = 10,
        min_score: float | None = None,
        min_txid: int | None = None,
        **filters: Any,
    ) -> _R:
        """The memories most relevant to ``query``, best first: ``results`` of ``{memory, score (fused rank),
        ranks, similarity (cosine), text_match, text_score (BM25)}``. ``min_score`` is the relevance floor
        (cosine similarity a memory whose text did not match must reach; 0 = off; omitted = the server's
        default), so an empty ``results`` means nothing matched. ``expand=["follows", ...]`` adds the hits'
        neighbours along those relationship types (one hop; ``expand_direction`` out, in or both), each
        with ``via`` saying which hit and relationship it came from."""
        body = {
            "query": query,
            "limit": limit,
            **({"min_score": min_score} if min_score is not None else {}),
            **{k: v for k, v in filters.items() if v is not None},
        }
        return self.client._do(
            _Call(
                "POST",
                self.base + "/recall",
                json=body,
                params=self._p(),
                headers=_headers(min_txid=min_txid),
                idempotent=True,
            )
        )

    def forget_matching(
        self,
        *,
        types: list[str] | None = None,
        tags: list[str] | None = None,
        since: float | str | None = None,
        until: float | str | None = None,
        dry_run: bool = False,
        durability: str | None = None,
    ) -> _R:
        """Delete every memory (superseded ones too) of these ``types``, with all these ``tags``, whose
        event time (else record time) is within ``since``..``until``: ``ids`` and ``count`` of those
        deleted, or with ``dry_run`` of those that would be. At least one condition is required."""
        body = {
            k: v
            for k, v in {"types": types, "tags": tags, "since": since, "until": until, "dry_run": dry_run}.items()
            if v is not None
        }
        return self.client._do(
            _Call(
                "POST",
                self.base + "/memories/forget",
                json=body,
                params=self._p(),
                headers=_headers(self._durability(durability)),
                idempotent=True,
            )
        )

    # Relationships (typed, directed links between this profile's memories), before ``list``,
    # which would shadow the builtin in their annotations.
    def relate(
        self,
        source: str,
        target: str,
        type: str = "relates_to",
        *,
        weight: float | None = None,
        properties: dict[str, Any] | None = None,
        durability: str | None = None,
    ) -> _R:
        """Link memory ``source -[type]-> target``: ``relationship`` (with its ``id``) and ``duplicate``
        (an identical live link existed: returned unchanged). ``weight`` is 0..1."""
        body: dict[str, Any] = {"target": target, "type": type}
        if weight is not None:
            body["weight"] = weight
        if properties:
            body["properties"] = properties
        return self.client._do(
            _Call(
                "POST",
                f"{self.base}/memories/{source}/relationships",
                json=body,
                params=self._p(),
                headers=_headers(self._durability(durability)),
            )
        )

    def unrelate(self, relationship_id: str, *, durability: str | None = None) -> _R:
        """Remove a relationship (it stays visible ``as_of`` an earlier time)."""
        return self.client._do(
            _Call(
                "DELETE",
                f"{self.base}/relationships/{relationship_id}",
                params=self._p(),
                headers=_headers(self._durability(durability)),
                idempotent=True,
            )
        )

    def relationships(self, *, limit: int = 100, cursor: str | None = None) -> _R:
        """A page of the profile's live relationships in id order: ``relationships`` and
        ``next_cursor`` (pass it back for the next page; ``None`` on the last)."""
        params: dict[str, Any] = {**self._p(), "limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self.client._do(_Call("GET", f"{self.base}/relationships", params=params, idempotent=True))

    def relationship(self, relationship_id: str) -> _R:
        return self.client._do(
            _Call("GET", f"{self.base}/relationships/{relationship_id}", params=self._p(), idempotent=True)
        )

    def neighbours(
        self,
        memory_id: str,
        *,
        types: Sequence[str] | None = None,
        direction: str = "both",
        limit: int = 100,
        as_of: float | str | None = None,
        include_superseded: bool = False,
        min_txid: int | None = None,
    ) -> _R:
        """The relationships of ``memory_id`` (``direction`` out, in or both; of ``types``) with the memory
        at their other end: ``results`` of ``{relationship, direction, memory}``, newest first."""
        params: dict[str, Any] = {"direction": direction, "limit": limit, **self._p()}
        if types:
            params["type"] = [*types]
        if as_of is not None:
            params["as_of"] = as_of
        if include_superseded:
            params["include_superseded"] = True
        return self.client._do(
            _Call(
                "GET",
                f"{self.base}/memories/{memory_id}/relationships",
                params=params,
                headers=_headers(min_txid=min_txid),
                idempotent=True,
            )
        )

    def path(
        self,
        source: str,
        target: str,
        *,
        max_depth: int = 4,
        types: Sequence[str] | None = None,
        direction: str = "out",
        as_of: float | str | None = None,
        include_superseded: bool = False,
        min_txid: int | None = None,
    ) -> _R:
        """A shortest path ``source`` → ``target`` of at most ``max_depth`` hops: ``found``, ``depth``,
        ``memories`` and ``relationships`` in order."""
        body = _walk(types, as_of, include_superseded) | {
            "from": source,
            "to": target,
            "max_depth": max_depth,
            "direction": direction,
        }
        return self.client._do(
            _Call(
                "POST",
                f"{self.base}/relationships/path",
                json=body,
                params=self._p(),
                headers=_headers(min_txid=min_txid),
                idempotent=True,
            )
        )

    def subgraph(
        self,
        memory_id: str,
        *,
        depth: int = 2,
        limit: int = 50,
        types: Sequence[str] | None = None,
        direction: str = "both",
        as_of: float | str | None = None,
        include_superseded: bool = False,
        min_txid: int | None = None,
    ) -> _R:
        """The memories within ``depth`` hops of ``memory_id`` (``memories`` of ``{memory, depth}``, at most
        ``limit``) and the ``relationships`` among them."""
        body = _walk(types, as_of, include_superseded) | {
            "memory_id": memory_id,
            "depth": depth,
            "limit": limit,
            "direction": direction,
        }
        return self.client._do(
            _Call(
                "POST",
                f"{self.base}/relationships/subgraph",
                json=body,
                params=self._p(),
                headers=_headers(min_txid=min_txid),
                idempotent=True,
            )
        )

    def list(
        self,
        *,
        types: list[str] | None = None,
        include_superseded: bool = False,
        limit: int = 100,
        cursor: str | None = None,
        tags: list[str] | None = None,
        since: float | str | None = None,
        until: float | str | None = None,
        as_of: float | str | None = None,
    ) -> _R:
        """A page of memories in id order (``memories``, and ``next_cursor`` to pass as ``cursor`` for the
        next page); ``since``/``until`` bound the event time (else record time), ``as_of`` asks what was
        current then. Times are unix seconds or ISO 8601 strings."""
        params: dict[str, Any] = {"limit": limit, "include_superseded": include_superseded, **self._p()}
        if types:
            params["type"] = types
        if tags:
            params["tag"] = tags
        for name, value in (("cursor", cursor), ("since", since), ("until", until), ("as_of", as_of)):
            if value is not None:
                params[name] = value
        return self.client._do(_Call("GET", self.base + "/memories", params=params, idempotent=True))

    def get(self, memory_id: str) -> _R:
        return self.client._do(_Call("GET", f"{self.base}/memories/{memory_id}", params=self._p(), idempotent=True))

    def history(self, memory_id: str) -> _R:
        return self.client._do(
            _Call("GET", f"{self.base}/memories/{memory_id}/history", params=self._p(), idempotent=True)
        )

    def forget(self, memory_id: str, *, durability: str | None = None) -> _R:
        return self.client._do(
            _Call(
                "DELETE",
                f"{self.base}/memories/{memory_id}",
                params=self._p(),
                headers=_headers(self._durability(durability)),
                idempotent=True,
            )
        )

    def stats(self) -> _R:
        return self.client._do(_Call("GET", self.base, params=self._p(), idempotent=True))
