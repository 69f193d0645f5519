"""``file:///path``: a local-directory object store with the same CAS semantics as S3.

Used by the embedded default. Conditional writes are atomic across processes: every
conditional check-and-write runs under an exclusive ``flock`` on one of 256 lock stripes
(chosen by key hash), and the object itself is replaced with ``rename``, so a reader sees the
old or the new bytes, never a mix. The ETag is the MD5 of the content, as S3 computes it for
single-part uploads. ``?fsync=false`` in the URL skips fsync (tests and benchmarks only).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

from .base import ConditionFailed, ListPage, ObjectNotFound, ObjectStore, StoreUnavailable

_STRIPES = 256
_META_DIR = ".memoturn-store"


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class FileStore(ObjectStore):
    """Objects are files below ``root``; a key ``a/b/c`` is the file ``root/a/b/c``."""

    def __init__(self, root: str, *, fsync: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.fsync = fsync
        self.url = "file://" + self.root
        self._locks = os.path.join(self.root, _META_DIR, "locks")
        os.makedirs(self._locks, exist_ok=True)

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        parsed = urllib.parse.urlparse(url)
        if not parsed.path:
            raise ValueError(f"file store URL needs a path: {url!r}")
        query = urllib.parse.parse_qs(parsed.query)
        fsync = query.get("fsync", ["true"])[0].lower() not in ("0", "false", "no")
        return cls(parsed.path, fsync=fsync)

    # -- helpers -------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise ValueError(f"invalid object key {key!r}")
        if key.split("/", 1)[0] == _META_DIR:
            raise ValueError(f"reserved object key {key!r}")
        return os.path.join(self.root, key)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=2).digest()) % _STRIPES
        fd = os.open(os.path.join(self._locks, f"{stripe:03d}"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_atomic(self, path: str, data: bytes) -> None:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
            if self.fsync:
                dfd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    @staticmethod
    def _unavailable(exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(
            f"file store I/O error: {exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, '?')})"
        )

    # -- interface -----------------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise self._unavailable(exc) from exc
        return data, _etag(data)

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
        path = self._path(key)
        try:
            if if_match is None and not if_none_match:
                self._write_atomic(path, data)
                return _etag(data)
            with self._locked(key):
                try:
                    with open(path, "rb") as f:
                        current: str | None = _etag(f.read())
                except (FileNotFoundError, NotADirectoryError):
                    current = None
                if if_none_match and current is not None:
                    raise ConditionFailed(f"{key} already exists")
                if if_match is not None and current != if_match.strip('"'):
                    raise ConditionFailed(f"{key} changed (ETag {current} != {if_match})")
                self._write_atomic(path, data)
        except OSError as exc:
            raise self._unavailable(exc) from exc
        return _etag(data)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            with self._locked(key):
                os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._unavailable(exc) from exc
        # Prune now-empty parent directories up to the root, as S3 has no directories.
        directory = os.path.dirname(path)
        while directory != self.root:
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = None,
        start_after: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        # Walk only the directory that can contain the prefix, then filter.
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = os.path.join(self.root, base_dir) if base_dir else self.root
        entries: set[str] = set()
        prefixes: set[str] = set()
        try:
            if delimiter == "/":
                # One directory level is enough: subdirectories are the common prefixes.
                rel_dir = base_dir + "/" if base_dir else ""
                with os.scandir(start) as it:
                    for entry in it:
                        key = rel_dir + entry.name
                        if not key.startswith(prefix) or entry.name.startswith(".tmp-"):
                            continue
                        if entry.is_dir():
                            if key != _META_DIR:
                                prefixes.add(key + "/")
                        else:
                            entries.add(key)
                delimiter = None
                walk: Iterator[tuple[str, list[str], list[str]]] = iter(())
            else:
                walk = os.walk(start)
            for dirpath, dirnames, filenames in walk:
                rel_dir = os.path.relpath(dirpath, self.root)
                rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
                if rel_dir == "":
                    dirnames[:] = [d for d in dirnames if d != _META_DIR]
                for name in filenames:
                    if name.startswith(".tmp-"):
                        continue
                    key = rel_dir + name
                    if not key.startswith(prefix):
                        continue
                    if delimiter:
                        rest = key[len(prefix) :]
                        if delimiter in rest:
                            prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                            continue
                    entries.add(key)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._unavailable(exc) from exc
        merged = sorted([(k, False) for k in entries] + [(p, True) for p in prefixes])
        if start_after is not None:
            merged = [item for item in merged if item[0] > start_after]
        page = merged[:limit]
        next_cursor = page[-1][0] if len(merged) > limit else None
        keys = [k for k, is_prefix in page if not is_prefix]
        return ListPage(
            keys=keys,
            prefixes=[k for k, is_prefix in page if is_prefix],
            next_cursor=next_cursor,
            sizes=[self._size(k) for k in keys],
        )

    def _size(self, key: str) -> int:
        # A key deleted between the walk and the stat holds no bytes any more.
        try:
            return os.stat(os.path.join(self.root, key)).st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise self._unavailable(exc) from exc
