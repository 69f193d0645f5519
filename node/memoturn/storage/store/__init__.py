"""Object stores: the source of truth, behind one small interface with conditional writes.

Every backend honours the same contract, which the manifest compare-and-swap relies on:

* ``put(key, data, if_none_match=True)`` creates the object only if no object has the key
  (``If-None-Match: *``); exactly one of N concurrent creators wins, the rest get
  :class:`ConditionFailed`.
* ``put(key, data, if_match=etag)`` replaces the object only if its current ETag is ``etag``
  (``If-Match``); exactly one of N concurrent replacers from the same ETag wins.
* ``put(key, data)`` with neither condition overwrites unconditionally (used only for objects
  whose key is unique by construction).
* ``get`` returns the bytes and the ETag that a later ``if_match`` must quote.
* Any failure to reach the backend raises :class:`StoreUnavailable`, so callers can retry
  with backoff without confusing an outage with a missing object.

Backends: :mod:`memoturn.storage.store.file` (``file:///path``, the embedded default) and
:mod:`memoturn.storage.store.cloud` (``s3://``, ``gs://``, ``az://``: S3, Google Cloud Storage
and Azure Blob through obstore). :func:`open_store` picks one from a URL.
"""

from __future__ import annotations

from .base import ConditionFailed, ListPage, ObjectNotFound, ObjectStore, StoreError, StoreUnavailable

__all__ = [
    "ObjectStore",
    "ListPage",
    "StoreError",
    "ObjectNotFound",
    "ConditionFailed",
    "StoreUnavailable",
    "open_store",
]


def open_store(url: str) -> ObjectStore:
    """Open a store from ``file:///path``, ``s3://bucket/prefix``, ``gs://bucket/prefix`` or ``az://container/prefix``.

    The clouds go through :class:`~memoturn.storage.store.cloud.CloudStore` (obstore, the Rust
    ``object_store`` crate). :class:`~memoturn.storage.store.s3.S3Store` (boto3) stays for
    comparison benchmarks and is not on any path ``open_store`` opens.
    """
    if url.startswith("file://"):
        from .file import FileStore

        return FileStore.from_url(url)
    if url.startswith(("s3://", "gs://", "az://")):
        from .cloud import CloudStore

        return CloudStore.from_url(url)
    raise ValueError(
        f"unsupported store URL {url!r}: use file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
    )
