"""Bearer tokens: an admin token, and tokens scoped to one namespace.

Auth is on as soon as ``MEMOTURN_ADMIN_TOKEN`` is set (the embedded default without it is an
open development server, and says so at start-up). Then every request except health,
readiness, metrics and the API docs needs ``Authorization: Bearer <token>``:

* the **admin** token may do anything, including minting and revoking namespace tokens and the
  node-to-node replication routes;
* a **namespace** token may reach only ``/v1/namespaces/{its namespace}/…`` and the profile
  databases whose namespace part (:func:`memoturn.names.split_profile_database`) is exactly
  its namespace; everything else is 403 (a prefix is not enough: ``acme`` never reaches
  ``acme-b--x``). Namespace tokens come from ``MEMOTURN_TOKENS`` (``ns:token,ns2:token2``,
  no expiry) or from ``POST /v1/admin/tokens``, which stores only the token's SHA-256 in the
  object store (``auth/tokens/{sha256}.json``, with an optional ``expires_at``), so every
  node honours it, and every node refuses it once expired (``401 token-expired``), cached or
  not: the expiry travels with the cache entry and is checked on each use.

Tokens are compared by their SHA-256 digests with :func:`hmac.compare_digest`. Expiry is
wall-clock time (nodes share it through the store), read from an injectable ``clock``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import BadRequest, Forbidden, NotFound, Unauthorized
from ..names import check_namespace, is_part, split_profile_database, token_key
from ..storage import store as st

_OPEN = {"/v1/health", "/v1/ready", "/metrics", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"}
#: The API docs' own assets (Swagger UI, ReDoc), served by the node itself: no CDN.
DOCS_ASSETS = "/static-offline-docs"
#: The web dashboard's files (memoturn.dashboard): open, since its API calls carry the token.
DASHBOARD = "/ui"
_OPEN_PREFIXES = (DOCS_ASSETS + "/", DASHBOARD + "/")
_NS_PATH = re.compile(r"^/v1/namespaces/([^/]+)(?:/|$)")
_DB_PATH = re.compile(r"^/v1/databases/([^/]+)(?:/|$)")
MAX_TOKEN_LIFETIME = 100 * 365 * 86400  # seconds; longer is "never" (omit the expiry), and keeps the float sane


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _Known(NamedTuple):
    """A looked-up token as the cache keeps it: the expiry rides along, so a cached entry
    cannot outlive its token."""

    fetched: float  # monotonic time of the store read
    namespace: str | None  # None: no such token (or revoked)
    expires_at: float | None  # unix seconds; None: never


class Authenticator:
    def __init__(
        self,
        store: st.ObjectStore,
        admin_token: str | None,
        tokens: str | None = None,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock  # wall clock for expiry (tests inject their own)
        self.enabled = bool(admin_token)
        self._admin = digest(admin_token) if admin_token else None
        self._static: dict[str, str] = {}
        for pair in (tokens or "").split(","):
            if pair.strip():
                ns, sep, tok = pair.strip().partition(":")
                if not sep or not tok or not is_part(ns):
                    raise ValueError(f"MEMOTURN_TOKENS must be 'namespace:token,…' with valid namespaces, got {ns!r}")
                self._static[digest(tok)] = ns
        self.cache_seconds = cache_seconds
        self._cache: dict[str, _Known] = {}
        self._lock = threading.Lock()

    # -- who is asking -------------------------------------------------------------------

    def identify(self, authorization: str | None) -> str:
        """``"*"`` for the admin, else the token's namespace; raises 401 otherwise."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)", type="missing-token")
        d = digest(authorization[7:].strip())
        if self._admin and hmac.compare_digest(d, self._admin):
            return "*"
        for static, ns in self._static.items():
            if hmac.compare_digest(d, static):
                return ns
        known = self._lookup(d)
        if known.namespace is None:
            raise Unauthorized("unknown or revoked token", type="invalid-token")
        if not is_part(known.namespace):  # minted before namespaces like 'acme-' were refused
            raise Unauthorized(
                f"this token is for {known.namespace!r}, which is not a valid namespace; mint a new one",
                type="invalid-token",
            )
        if known.expires_at is not None and self.clock() >= known.expires_at:
            raise Unauthorized(
                f"this token expired at {known.expires_at:.0f} (unix seconds); mint a new one", type="token-expired"
            )
        return known.namespace

    def _lookup(self, d: str) -> _Known:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(d)
            if hit and now - hit.fetched < self.cache_seconds:
                return hit
        try:
            data, _ = self.store.get(token_key(d))
            record = json.loads(data)
            known = _Known(now, record["namespace"], record.get("expires_at"))
        except st.ObjectNotFound:
            known = _Known(now, None, None)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[d] = known
        return known

    # -- what they may reach -------------------------------------------------------------

    def authorize(self, path: str, authorization: str | None) -> None:
        if not self.enabled or path in _OPEN or path == DASHBOARD or path.startswith(_OPEN_PREFIXES):
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
        owner = split_profile_database(m.group(1)) if m else None
        if owner is not None and owner[0] == who:
            return
        raise Forbidden(f"this token is for namespace {who!r}; {path} needs the admin token", type="wrong-namespace")

    # -- admin ---------------------------------------------------------------------------

    def mint(self, namespace: str, ttl_seconds: int | None = None, expires_at: float | None = None) -> dict[str, Any]:
        """Mint a token for one namespace, optionally expiring after ``ttl_seconds`` or at
        ``expires_at`` (unix seconds). The token itself is returned once and never stored."""
        if not self.enabled:
            raise BadRequest("auth is off: set MEMOTURN_ADMIN_TOKEN first", type="auth-disabled")
        check_namespace(namespace)
        now = self.clock()
        expiry = self._expiry(now, ttl_seconds, expires_at)
        token = "mt_" + secrets.token_urlsafe(32)
        d = digest(token)
        body = json.dumps({"namespace": namespace, "created_at": now, "expires_at": expiry}).encode()
        self.store.put(token_key(d), body, if_none_match=True)
        return {"token": token, "token_sha256": d, "namespace": namespace, "expires_at": expiry}

    @staticmethod
    def _expiry(now: float, ttl_seconds: int | None, expires_at: float | None) -> float | None:
        if ttl_seconds is not None and expires_at is not None:
            raise BadRequest("give ttl_seconds or expires_at, not both", type="invalid-expiry")
        if ttl_seconds is not None:
            # bool is an int in Python; a ttl of True seconds is a mistake, not a request.
            if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
                raise BadRequest(f"ttl_seconds must be a positive integer, got {ttl_seconds!r}", type="invalid-expiry")
            if ttl_seconds > MAX_TOKEN_LIFETIME:
                raise BadRequest(
                    f"ttl_seconds is at most {MAX_TOKEN_LIFETIME} (100 years); omit it for no expiry",
                    type="invalid-expiry",
                )
            return now + ttl_seconds
        if expires_at is not None:
            if (
                isinstance(expires_at, bool)
                or not isinstance(expires_at, (int, float))
                or not math.isfinite(expires_at)
            ):
                raise BadRequest(f"expires_at must be unix seconds, got {expires_at!r}", type="invalid-expiry")
            if expires_at <= now:
                raise BadRequest(f"expires_at {expires_at} is not in the future", type="invalid-expiry")
            if expires_at > now + MAX_TOKEN_LIFETIME:
                raise BadRequest("expires_at is more than 100 years away; omit it for no expiry", type="invalid-expiry")
            return float(expires_at)
        return None

    def revoke(self, token_sha256: str) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", token_sha256):
            raise BadRequest("give the token's SHA-256 (64 hex digits)", type="invalid-token-id")
        key = token_key(token_sha256)
        try:
            self.store.get(key)
        except st.ObjectNotFound:
            raise NotFound("no such token", type="token-not-found") from None
        self.store.delete(key)
        with self._lock:
            self._cache.pop(token_sha256, None)
