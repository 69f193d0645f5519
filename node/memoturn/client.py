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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
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
            if not call.idempotent or last:
                raise ProblemError(0, "unreachable", f"{self.url}: {r}") from None
            return None
        if r.status_code < 400:
            return _result(r)
        if not _retryable(r) or last:
            raise ProblemError.from_response(r)
        return None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def database(self, name: str, branch: str = "main") -> Database[_R]:
        return Database(self, name, branch)

    def profile(self, namespace: str, profile: str) -> Profile[_R]:
        return Profile(self, namespace, profile)

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
    ) -> None:
        super().__init__(url, token, retries, backoff, durability)
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=self._auth())

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
    ) -> None:
        super().__init__(url, token, retries, backoff, durability)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=self._auth())

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


class Profile(_Scope[_R]):
    """Typed memories of one profile (``{namespace}--{profile}``)."""

    def __init__(self, client: _Client[_R], namespace: str, profile: str) -> None:
        self.client = client
        self.base = f"/v1/namespaces/{namespace}/profiles/{profile}"

    def add(self, content: str, *, type: str = "fact", durability: str | None = None, **fields: Any) -> _R:
        body = {"content": content, "type": type, **{k: v for k, v in fields.items() if v is not None}}
        return self.client._do(
            _Call("POST", self.base + "/memories", json=body, headers=_headers(self._durability(durability)))
        )

    def add_many(self, memories: list[dict[str, Any]], *, durability: str | None = None) -> _R:
        return self.client._do(
            _Call(
                "POST",
                self.base + "/memories/batch",
                json={"memories": memories},
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
        default), so an empty ``results`` means nothing matched."""
        body = {
            "query": query,
            "limit": limit,
            **({"min_score": min_score} if min_score is not None else {}),
            **{k: v for k, v in filters.items() if v is not None},
        }
        return self.client._do(
            _Call("POST", self.base + "/recall", json=body, headers=_headers(min_txid=min_txid), idempotent=True)
        )

    def list(
        self,
        *,
        types: list[str] | None = None,
        include_superseded: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> _R:
        params: dict[str, Any] = {"limit": limit, "include_superseded": include_superseded}
        if types:
            params["type"] = types
        if cursor:
            params["cursor"] = cursor
        return self.client._do(_Call("GET", self.base + "/memories", params=params, idempotent=True))

    def get(self, memory_id: str) -> _R:
        return self.client._do(_Call("GET", f"{self.base}/memories/{memory_id}", idempotent=True))

    def history(self, memory_id: str) -> _R:
        return self.client._do(_Call("GET", f"{self.base}/memories/{memory_id}/history", idempotent=True))

    def forget(self, memory_id: str, *, durability: str | None = None) -> _R:
        return self.client._do(
            _Call(
                "DELETE",
                f"{self.base}/memories/{memory_id}",
                headers=_headers(self._durability(durability)),
                idempotent=True,
            )
        )

    def stats(self) -> _R:
        return self.client._do(_Call("GET", self.base, idempotent=True))
