"""``s3://``, ``gs://``, ``az://``: the :class:`ObjectStore` contract over obstore (the Rust ``object_store`` crate).

The URL, its parameters and each cloud's credential chain are :mod:`.cloud_url`'s.

Conditional writes use obstore's ``PutMode``: ``"create"`` for ``if_none_match`` and
``{"e_tag": ...}`` (GCS: ``{"version": generation}``) for ``if_match``; a lost condition
(``AlreadyExistsError``/``PreconditionError``, which obstore also reports for ``If-Match`` on an
absent key) is :class:`ConditionFailed`. Conditional PUTs go through a second obstore client
configured with ``max_retries=0``: a retry after a write that landed but whose answer was lost
would report a false lost race (or turn a lost race into a reported success), so a timeout or a
dropped connection surfaces as :class:`StoreUnavailable` and the caller re-reads. Every other
request retries ``attempts - 1`` times with a short backoff.

ETags are returned without quotes. On GCS a conditional replace needs the object's generation,
so the ETag this store hands out there is ``"<etag>#<generation>"``; an ``if_match`` without a
generation cannot be one this store issued and fails as :class:`ConditionFailed`.

Failures are :class:`StoreUnavailable` whose message names the cause: ``bucket not found``,
``bad credentials``, ``access denied``, ``no credentials``, ``endpoint unreachable``, ``timed
out``, ``connection lost``, ``throttled``, ``server error`` or ``backend error`` (a missing bucket is never
:class:`ObjectNotFound` nor :class:`ConditionFailed`).

``file://`` is not accepted: obstore's LocalStore cannot replace conditionally (``PutMode``
update is not implemented there); :class:`~memoturn.storage.store.file.FileStore` is the local
backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import AzureStore, GCSStore, S3Store

from .base import ConditionFailed, ListPage, ObjectNotFound, ObjectStore, StoreError, StoreUnavailable
from .cloud_url import obstore_for, valid_path, without_retries

if TYPE_CHECKING:
    from obstore import PutMode, PutResult
    from obstore.store import ObjectStore as ObstoreStore

# The greatest code point: a string that sorts after every key with a given beginning.
_MAX_CHAR = "\U0010ffff"
_CODE = re.compile(r"<Code>\s*([^<\s]+)\s*</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
# obstore appends the Rust error's debug form, whose HttpError kind tells what broke.
_HTTP_KIND = re.compile(r"HttpError\s*\{\s*kind:\s*(\w+)")
_BUCKET_MISSING = {"NoSuchBucket", "ContainerNotFound"}
_BAD_CREDENTIALS = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AuthenticationFailed",
    "InvalidAuthenticationInfo",
}
_ACCESS_DENIED = {"AccessDenied", "AllAccessDisabled", "AuthorizationFailure", "AuthorizationPermissionMismatch"}


def _check_key(key: str) -> None:
    # Same key rules as the file and S3 backends, so every backend accepts the same keys.
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")


def _safe_lower_bound(bound: str) -> str | None:
    """The longest beginning of ``bound`` that obstore accepts as a path (a beginning of a
    string sorts no later than the string, so it is still a lower bound)."""
    kept: list[str] = []
    for part in bound.split("/"):
        if part in ("", ".", ".."):
            break
        kept.append(part)
    return "/".join(kept) or None


def _unquote(etag: str) -> str:
    return etag.strip().strip('"')


def _diagnose(exc: BaseException) -> str:
    """The cause of a backend failure, in a few words an operator can act on."""
    text = str(exc)
    codes = set(_CODE.findall(text))
    status_match = _STATUS.search(text)
    status = int(status_match.group(1)) if status_match else None
    lowered = text.lower()
    if codes & _BUCKET_MISSING or "bucket does not exist" in lowered or "container does not exist" in lowered:
        return "bucket not found"
    if codes & _BAD_CREDENTIALS or isinstance(exc, UnauthenticatedError) or status == 401:
        return "bad credentials"
    if codes & _ACCESS_DENIED or isinstance(exc, PermissionDeniedError) or status == 403:
        return "access denied"
    if isinstance(exc, (NotSupportedError, NotImplementedError)):
        return "not supported by this backend"
    if status == 429 or "SlowDown" in codes or "ServerBusy" in codes:
        return "throttled"
    if status is not None and status >= 500:
        return "server error"
    kind_match = _HTTP_KIND.search(text)
    kind = kind_match.group(1) if kind_match else ""
    if kind == "Connect" or "connection refused" in lowered or "dns error" in lowered:
        return "endpoint unreachable"
    if kind == "Timeout" or "timed out" in lowered:
        return "timed out"
    if kind in ("Request", "Interrupted", "Decode") or "error sending request" in lowered:
        return "connection lost"
    if "credential" in lowered or "token" in lowered:
        return "no credentials"
    return "backend error"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__


class CloudStore(ObjectStore):
    """One obstore store (S3, GCS or Azure) behind the :class:`ObjectStore` contract.

    ``store`` carries the bucket, prefix and credentials; keys are given and listed relative to
    its prefix. ``cas_store`` is the client for conditional PUTs; by default it is ``store``
    rebuilt with retries off (see the module docstring). Safe to share between threads.
    """

    def __init__(self, store: ObstoreStore, url: str, *, cas_store: ObstoreStore | None = None) -> None:
        self._store = store
        self._cas = cas_store if cas_store is not None else without_retries(store)
        self.url = url
        if isinstance(store, GCSStore):
            self.kind = "gs"
        elif isinstance(store, AzureStore):
            self.kind = "az"
        elif isinstance(store, S3Store):
            self.kind = "s3"
        else:
            self.kind = type(store).__name__
        config: Mapping[str, Any] = getattr(store, "config", {}) or {}
        self.bucket = str(config.get("bucket") or config.get("container_name") or "")
        prefix = getattr(store, "prefix", None) or ""
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str) -> CloudStore:
        """The store a ``s3://``, ``gs://`` or ``az://`` URL names (see :mod:`.cloud_url`)."""
        return cls(obstore_for(url), url)

    # -- helpers ---------------------------------------------------------------------------

    def _where(self, key: str) -> str:
        return f"{self.kind}://{self.bucket}/{self.prefix}{key}"

    def _fail(self, exc: BaseException, key: str, *, missing: type[StoreError] | None = None) -> NoReturn:
        """Translate an obstore failure; ``missing`` is what "no such object" means here."""
        cause = _diagnose(exc)
        if cause != "bucket not found":
            if isinstance(exc, (AlreadyExistsError, PreconditionError)) and missing is ConditionFailed:
                raise ConditionFailed(f"{key}: condition failed") from None
            if isinstance(exc, FileNotFoundError) and missing is not None:
                raise missing(key) from None
        raise StoreUnavailable(f"{self._where(key)}: {cause}: {_first_line(exc)}") from exc

    def _etag(self, e_tag: str | None, version: str | None, key: str) -> str:
        if e_tag is None:
            raise StoreUnavailable(f"{self._where(key)}: backend error: the backend returned no ETag")
        etag = _unquote(e_tag)
        if self.kind == "gs":
            if version is None:
                raise StoreUnavailable(f"{self._where(key)}: backend error: the backend returned no generation")
            return f"{etag}#{version}"
        return etag

    # -- interface -------------------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        _check_key(key)
        try:
            result = obstore.get(self._store, key)
            data = bytes(result.bytes())
            meta = result.meta
        except (BaseError, OSError) as exc:
            self._fail(exc, key, missing=ObjectNotFound)
        return data, self._etag(meta["e_tag"], meta["version"], key)

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        if if_match is not None and if_none_match:
            raise ValueError("if_match and if_none_match are exclusive")
        _check_key(key)
        mode: PutMode = "overwrite"
        store = self._store
        conditional = if_none_match or if_match is not None
        if if_none_match:
            mode = "create"
            store = self._cas
        elif if_match is not None:
            token = _unquote(if_match)
            store = self._cas
            if self.kind == "gs":
                etag, sep, generation = token.rpartition("#")
                if not sep or not generation:
                    raise ConditionFailed(f"{key}: {if_match!r} carries no GCS generation, so it is not current")
                mode = {"e_tag": f'"{etag}"', "version": generation}
            else:
                mode = {"e_tag": f'"{token}"'}
        try:
            result: PutResult = obstore.put(store, key, data, mode=mode, use_multipart=False)
        except (BaseError, OSError, NotImplementedError) as exc:
            self._fail(exc, key, missing=ConditionFailed if conditional else None)
        return self._etag(result["e_tag"], result["version"], key)

    def delete(self, key: str) -> None:
        _check_key(key)
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError as exc:
            if _diagnose(exc) == "bucket not found":
                self._fail(exc, key)
        except (BaseError, OSError) as exc:
            self._fail(exc, key)

    def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = None,
        start_after: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        limit = max(1, limit)
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if directory and not valid_path(directory):
            return ListPage(keys=[], prefixes=[], next_cursor=None)  # no valid key starts so
        if delimiter is None or delimiter == "":
            return self._list_flat(prefix, directory, start_after, limit)
        if delimiter != "/":
            raise ValueError(f"only '/' is supported as a list delimiter, not {delimiter!r}")
        try:
            result = obstore.list_with_delimiter(self._store, directory or None)
        except (BaseError, OSError) as exc:
            self._fail(exc, prefix)
        entries = sorted(
            [(meta["path"], False) for meta in result["objects"]]
            + [(p.rstrip("/") + "/", True) for p in result["common_prefixes"]]
        )
        size_of = {meta["path"]: int(meta["size"]) for meta in result["objects"]}
        # An entry after start_after; a common prefix that start_after lies in sorts before it.
        entries = [e for e in entries if e[0].startswith(prefix) and (start_after is None or e[0] > start_after)]
        page = entries[:limit]
        keys = [name for name, is_prefix in page if not is_prefix]
        return ListPage(
            keys=keys,
            prefixes=[name for name, is_prefix in page if is_prefix],
            next_cursor=page[-1][0] if len(entries) > limit else None,
            sizes=[size_of[name] for name in keys],
        )

    def _list_flat(self, prefix: str, directory: str, start_after: str | None, limit: int) -> ListPage:
        # Start the listing just before the first key that can match: obstore's offset is
        # the backend's StartAfter (Azure filters on the client).
        bound: str | None = None
        if prefix:
            last = ord(prefix[-1])
            bound = prefix[:-1] + (chr(last - 1) + _MAX_CHAR if last > 0 else "")
        if start_after is not None and (bound is None or start_after > bound):
            bound = start_after
        offset = _safe_lower_bound(bound) if bound else None
        keys: list[str] = []
        sizes: list[int] = []
        more = done = False
        try:
            stream = obstore.list(self._store, directory or None, offset=offset, chunk_size=min(limit + 1, 1000))
            for chunk in stream:
                for meta in chunk:
                    path = meta["path"]
                    if (start_after is not None and path <= start_after) or (
                        not path.startswith(prefix) and path < prefix
                    ):
                        continue
                    if not path.startswith(prefix):
                        done = True  # keys with the prefix are contiguous: none follow
                    elif len(keys) == limit:
                        more = done = True
                    else:
                        keys.append(path)
                        sizes.append(int(meta["size"]))
                    if done:
                        break
                if done:
                    break
        except (BaseError, OSError) as exc:
            self._fail(exc, prefix)
        return ListPage(keys=keys, prefixes=[], next_cursor=keys[-1] if more else None, sizes=sizes)
