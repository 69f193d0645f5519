"""Writer leases: who may write a branch, and the epoch that fences every write it makes.

:class:`LeaseTable` is the interface the node uses; :class:`LocalLeaseTable` is the
in-process table of the embedded default. The etcd-backed table (one lease per node,
ownership keys attached to it, epoch = the key's creation revision) implements the same
interface. ``acquire`` returns an epoch strictly greater than every epoch handed out for
that branch before and than ``at_least - 1``; the node then CAS-writes the manifest with it
before accepting writes, which is what makes a stale owner harmless.
"""

from __future__ import annotations

import abc
import threading

from ..errors import NotOwner


class LeaseTable(abc.ABC):
    #: True when other nodes share this table (etcd): reads then need ownership too.
    shared = False
    #: Increases whenever this node had to take a new lease: ownership taken under an
    #: older generation is void and must be acquired again.
    generation = 1

    def start(self) -> LeaseTable:
        return self

    def revoke(self) -> None:
        """Drop every ownership of this node at once (graceful shutdown)."""

    @abc.abstractmethod
    def acquire(self, key: str, node_id: str, *, at_least: int) -> int:
        """Take ownership of ``key`` for ``node_id``; return the new epoch or raise NotOwner."""

    @abc.abstractmethod
    def release(self, key: str, node_id: str) -> None:
        """Give up ownership (graceful close); releasing what one does not own is a no-op."""

    @abc.abstractmethod
    def owner(self, key: str) -> tuple[str, int] | None:
        """``(node_id, epoch)`` of the current owner, or None."""

    def healthy(self) -> bool:
        """False when this node can no longer prove it holds its lease (stop writing)."""
        return True

    def close(self) -> None:
        pass


class LocalLeaseTable(LeaseTable):
    """Ownership kept in this process: correct for one node, the embedded default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, tuple[str, int]] = {}
        self._counter = 0

    def acquire(self, key: str, node_id: str, *, at_least: int) -> int:
        with self._lock:
            current = self._owners.get(key)
            if current is not None and current[0] != node_id:
                raise NotOwner(f"{key} is owned by {current[0]}")
            self._counter = max(self._counter + 1, at_least)
            self._owners[key] = (node_id, self._counter)
            return self._counter

    def release(self, key: str, node_id: str) -> None:
        with self._lock:
            current = self._owners.get(key)
            if current is not None and current[0] == node_id:
                del self._owners[key]

    def owner(self, key: str) -> tuple[str, int] | None:
        with self._lock:
            return self._owners.get(key)
