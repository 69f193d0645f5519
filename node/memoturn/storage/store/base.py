"""The object-store contract: the :class:`ObjectStore` interface, its page type and its errors.

Backends import this module, and :mod:`memoturn.storage.store` re-exports it, so the package's
``open_store`` factory can import the backends without an import cycle.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field


class StoreError(Exception):
    """Base class of object-store errors."""


class ObjectNotFound(StoreError):
    """The key does not exist."""


class ConditionFailed(StoreError):
    """A conditional write lost: the key exists (create) or its ETag changed (replace)."""


class StoreUnavailable(StoreError):
    """The backend could not be reached or failed; the operation may be retried."""


@dataclass(frozen=True)
class ListPage:
    """One page of a listing: full keys, common prefixes (with a delimiter), next cursor.

    ``sizes`` holds each key's size in bytes, in the order of ``keys``, so a storage-usage
    measurement needs no request per object.
    """

    keys: list[str]
    prefixes: list[str]
    next_cursor: str | None
    sizes: list[int] = field(default_factory=list)


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

    def usage(self, prefix: str = "") -> tuple[int, int]:
        """``(objects, bytes)`` under ``prefix``, following pagination: what the store holds."""
        objects = total = 0
        cursor: str | None = None
        while True:
            page = self.list(prefix, start_after=cursor)
            objects += len(page.keys)
            total += sum(page.sizes)
            if page.next_cursor is None:
                return objects, total
            cursor = page.next_cursor

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; return how many were deleted."""
        keys = list(self.iter_keys(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def close(self) -> None:  # pragma: no cover - backends without resources
        """Release connections."""
