"""Bearer tokens: an admin token, and tokens scoped to one namespace.

Auth is on as soon as ``MEMOTURN_ADMIN_TOKEN`` is set (the embedded default without it is an
open development server, and says so at start-up). Then every request except health,
readiness, metrics and the API docs needs ``Authorization: Bearer <token>``:

* the **admin** token may do anything, including minting and revoking namespace tokens and the
  node-to-node replication routes;
* a **namespace** token may reach only ``/v1/namespaces/{its namespace}/…`` and the databases
  named ``{its namespace}--…``; everything else is 403. Namespace tokens come from
  ``MEMOTURN_TOKENS`` (``ns:token,ns2:token2``) or from ``POST /v1/admin/tokens``, which
  stores only the token's SHA-256 in the object store (``auth/tokens/{sha256}.json``), so
  every node honours it.

Tokens are compared by their SHA-256 digests with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from typing import Any

from . import store as st
from .errors import BadRequest, Forbidden, NotFound, Unauthorized, Unavailable

_OPEN = {"/v1/health", "/v1/ready", "/metrics", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"}
_NS_PATH = re.compile(r"^/v1/namespaces/([^/]+)(?:/|$)")
_DB_PATH = re.compile(r"^/v1/databases/([^/]+)(?:/|$)")
_NS = re.compile(r"^[a-z0-9](?:[a-z0-9_.]|-(?!-)){0,62}$")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(self, store: st.ObjectStore, admin_token: str | None, tokens: str | None = None,
                 cache_seconds: float = 30.0) -> None:
        self.store = store
        self.enabled = bool(admin_token)
        self._admin = digest(admin_token) if admin_token else None
        self._static: dict[str, str] = {}
        for pair in (tokens or "").split(","):
            if pair.strip():
                ns, sep, tok = pair.strip().partition(":")
                if not sep or not tok or not _NS.match(ns):
                    raise ValueError("MEMOTURN_TOKENS must be 'namespace:token,…'")
                self._static[digest(tok)] = ns
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    # -- who is asking -------------------------------------------------------------------

    def identify(self, authorization: str | None) -> str:
        """``"*"`` for the admin, else the token's namespace; raises 401 otherwise."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)", type="missing-token")
        d = digest(authorization[7:].strip())
        if self._admin and hmac.compare_digest(d, self._admin):
            return "*"
        for known, ns in self._static.items():
            if hmac.compare_digest(d, known):
                return ns
        ns = self._lookup(d)
        if ns is None:
            raise Unauthorized("unknown or revoked token", type="invalid-token")
        return ns

    def _lookup(self, d: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(d)
            if hit and now - hit[0] < self.cache_seconds:
                return hit[1]
        try:
            data, _ = self.store.get(f"auth/tokens/{d}.json")
            ns: str | None = json.loads(data)["namespace"]
        except st.ObjectNotFound:
            ns = None
        except st.StoreUnavailable as exc:
            raise Unavailable(f"cannot check the token: object store unavailable: {exc}") from exc
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[d] = (now, ns)
        return ns

    # -- what they may reach -------------------------------------------------------------

    def authorize(self, path: str, authorization: str | None) -> None:
        if not self.enabled or path in _OPEN:
            return
        who = self.identify(authorization)
        if who == "*":
            return
        m = _NS_PATH.match(path)
        if m:
            if m.group(1) == who:
                return
            raise Forbidden(f"this token is for namespace {who!r}, not {m.group(1)!r}", type="wrong-namespace")
        m = _DB_PATH.match(path)
        if m and m.group(1).startswith(who + "--"):
            return
        raise Forbidden(f"this token is for namespace {who!r}; {path} needs the admin token", type="wrong-namespace")

    # -- admin ---------------------------------------------------------------------------

    def mint(self, namespace: str) -> dict[str, Any]:
        if not self.enabled:
            raise BadRequest("auth is off: set MEMOTURN_ADMIN_TOKEN first", type="auth-disabled")
        if not _NS.match(namespace):
            raise BadRequest(f"invalid namespace {namespace!r}", type="invalid-name")
        token = "mt_" + secrets.token_urlsafe(32)
        d = digest(token)
        body = json.dumps({"namespace": namespace, "created_at": time.time()}).encode()
        try:
            self.store.put(f"auth/tokens/{d}.json", body, if_none_match=True)
        except st.StoreUnavailable as exc:
            raise Unavailable(f"object store unavailable: {exc}") from exc
        return {"token": token, "token_sha256": d, "namespace": namespace}

    def revoke(self, token_sha256: str) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", token_sha256):
            raise BadRequest("give the token's SHA-256 (64 hex digits)", type="invalid-token-id")
        key = f"auth/tokens/{token_sha256}.json"
        try:
            self.store.get(key)
        except st.ObjectNotFound:
            raise NotFound("no such token", type="token-not-found") from None
        self.store.delete(key)
        with self._lock:
            self._cache.pop(token_sha256, None)
