"""Measure what the object store holds by listing it now and then.

Object stores keep no running total a node could read, so a daemon thread lists the whole
store (every tenant's data) every ``store_usage_interval_seconds`` and publishes the object
count and byte total as gauges; the operator reads them into the tenant's ``status.usage``.
A failed listing keeps the previous values: stale numbers beat gaps, and the timestamp gauge
says how old they are.

In a cluster one node lists, not every node: ``elected`` says whether this node is the one
(the node the cluster's rendezvous order ranks first for :data:`MEASURER_KEY` among live nodes),
so the store is listed once per interval whatever the node count, and another node takes over
when that one leaves. The operator reads the newest measurement any node published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..metrics import NodeMetrics
from ..storage.store import ObjectStore

log = logging.getLogger(__name__)

MEASURER_KEY = "store-usage"
"""The rendezvous key that picks the one node of a cluster that measures."""

FIRST_RUN_DELAY_SECONDS = 1.0
"""How long after start the first measurement runs: soon, but not in the way of startup."""


class StoreUsageMeter:
    """A daemon thread that lists the store every ``interval`` seconds (0: never) while ``elected()``."""

    def __init__(
        self,
        store: ObjectStore,
        metrics: NodeMetrics,
        interval: float,
        elected: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self.elected = elected
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="memoturn-store-usage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def measure(self) -> bool:
        """List the store once and set the gauges; False (values kept) if the listing failed."""
        try:
            objects, total = self.store.usage()
        except Exception as exc:  # noqa: BLE001 - any listing failure only delays the figure
            log.warning("measuring the object store's usage failed (keeping the last values): %s", exc)
            return False
        self.metrics.store_objects.set(objects)
        self.metrics.store_bytes.set(total)
        self.metrics.store_usage_timestamp.set(time.time())
        return True

    def _run(self) -> None:
        delay = min(FIRST_RUN_DELAY_SECONDS, self.interval)
        while not self._stop.wait(delay):
            if self.elected():
                self.measure()
            delay = self.interval
