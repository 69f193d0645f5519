"""Object stores: the source of truth, behind one small interface with conditional writes.

Every backend honours the same contract, which the manifest compare-and-swap relies on:

* ``put(key, data, if_none_match=True)`` creates the object only if no object has the key
  (``If-None-Match: *``); exactly one of N concurrent creators wins, the rest get
  :class:`PreconditionFailed`.
* ``put(key, data, if_match=etag)`` replaces the object only if its current ETag is ``etag``
  (``If-Match``); exactly one of N concurrent replacers from the same ETag wins.
* ``put(key, data)`` with neither condition overwrites unconditionally (used only for objects
  whose key is unique by construction).
* ``get`` returns the bytes and the ETag that a later ``if_match`` must quote.
* Any failure to reach the backend raises :class:`StoreUnavailable`, so callers can retry
  with backoff without confusing an outage with a missing object.

Backends: :mod:`memoturn.store.file` (``file:///path``, the embedded default) and
:mod:`memoturn.store.s3` (``s3://bucket/prefix``). :func:`open_store` picks one from a URL.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "ObjectStore",
    "ListPage",
    "StoreError",
    "ObjectNotFound",
    "PreconditionFailed",
    "StoreUnavailable",
    "open_store",
]


class StoreError(Exception):
    """Base class of object-store errors."""


class ObjectNotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the key exists (create) or its ETag changed (replace)."""


class StoreUnavailable(StoreError):
    """The backend could not be reached or failed; the operation may be retried."""


@dataclass(frozen=True)
class ListPage:
    """One page of a listing: full keys, common prefixes (with a delimiter), next cursor."""

    keys: list[str]
    prefixes: list[str]
    next_cursor: str | None


class ObjectStore(abc.ABC):
    """A flat key space of immutable-or-CAS-replaced objects. Keys use ``/`` as separator."""

    url: str

    @abc.abstractmethod
    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(data, etag)``; raise :class:`ObjectNotFound` if absent."""

    @abc.abstractmethod
    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write ``data`` and return its new ETag, honouring at most one condition."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; deleting an absent key is not an error."""

    @abc.abstractmethod
    def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = None,
        start_after: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        """List keys under ``prefix`` in lexicographic order, at most ``limit`` entries."""

    def iter_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, following pagination."""
        cursor: str | None = None
        while True:
            page = self.list(prefix, start_after=cursor)
            yield from page.keys
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; return how many were deleted."""
        keys = list(self.iter_keys(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def close(self) -> None:  # pragma: no cover - backends without resources
        """Release connections."""


def open_store(url: str) -> ObjectStore:
    """Open a store from ``file:///path`` or ``s3://bucket/prefix``."""
    if url.startswith("file://"):
        from .file import FileStore

        return FileStore.from_url(url)
    if url.startswith("s3://"):
        from .s3 import S3Store

        return S3Store.from_url(url)
    raise ValueError(f"unsupported store URL {url!r}: use file:///path or s3://bucket/prefix")
