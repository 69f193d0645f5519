"""A node measures what the object store holds by listing it, and publishes it as gauges."""

from __future__ import annotations

import os
import time

from memoturn.cluster.placement import rendezvous
from memoturn.metrics import NodeMetrics
from memoturn.server.store_usage import MEASURER_KEY, StoreUsageMeter
from memoturn.storage.store import StoreUnavailable
from memoturn.storage.store.file import FileStore
from support.cluster import Cluster
from support.nodes import Memoturnd

_META_DIR = ".memoturn-store"


def _bytes_on_disk(root: str) -> tuple[int, int]:
    """``(files, bytes)`` of the objects below a file store's root (its lock directory excluded)."""
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d != _META_DIR]
        for name in filenames:
            if not name.startswith(".tmp-"):
                files += 1
                total += os.path.getsize(os.path.join(dirpath, name))
    return files, total


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_node_reports_the_bytes_its_store_holds(tmp_path):
    store_dir = str(tmp_path / "store")
    node = Memoturnd(
        str(tmp_path / "node"),
        "file://" + store_dir,
        env={"MEMOTURN_STORE_USAGE_INTERVAL_SECONDS": "1", "MEMOTURN_DURABILITY": "durable"},
    )
    try:
        node.wait_ready()
        assert node.client.post("/v1/databases", json={"name": "usage"}).status_code == 201
        for i in range(20):
            r = node.client.put(f"/v1/databases/usage/kv/k{i}", json={"value": {"pad": "p" * 500}})
            assert r.status_code < 300, r.text
        deadline = time.monotonic() + 120
        seen: tuple[float | None, float | None, tuple[int, int]] = (None, None, (0, 0))
        while time.monotonic() < deadline:
            text = node.client.get("/metrics").text
            measured = (_gauge(text, "memoturn_store_objects"), _gauge(text, "memoturn_store_bytes"))
            on_disk = _bytes_on_disk(store_dir)
            seen = (*measured, on_disk)
            if measured == (float(on_disk[0]), float(on_disk[1])) and on_disk[1] > 0:
                assert (_gauge(text, "memoturn_store_usage_timestamp_seconds") or 0) > 0
                return
            time.sleep(0.2)
        raise AssertionError(f"store gauges (objects, bytes) never matched the files on disk: {seen}")
    finally:
        node.close()


class _FailingStore(FileStore):
    """Fault injection: a store whose listings fail once ``broken`` is set."""

    broken = False

    def list(self, prefix, *, delimiter=None, start_after=None, limit=1000):  # type: ignore[no-untyped-def]
        if self.broken:
            raise StoreUnavailable("injected listing failure")
        return super().list(prefix, delimiter=delimiter, start_after=start_after, limit=limit)


def test_a_failed_listing_keeps_the_last_values(tmp_path, caplog):
    store = _FailingStore(str(tmp_path / "store"))
    store.put("a/1", b"12345")
    store.put("b/2", b"1234567")
    metrics = NodeMetrics()
    meter = StoreUsageMeter(store, metrics, interval=0)
    assert meter.measure()
    assert (metrics.store_objects._value.get(), metrics.store_bytes._value.get()) == (2, 12)
    stamp = metrics.store_usage_timestamp._value.get()
    assert stamp > 0
    store.broken = True
    store.put("c/3", b"1")
    assert not meter.measure()
    assert "injected listing failure" in caplog.text
    assert (metrics.store_objects._value.get(), metrics.store_bytes._value.get()) == (2, 12)
    assert metrics.store_usage_timestamp._value.get() == stamp


def test_interval_zero_starts_no_thread(tmp_path):
    meter = StoreUsageMeter(FileStore(str(tmp_path / "store")), NodeMetrics(), interval=0)
    meter.start()
    assert meter._thread is None
    meter.stop()


def test_in_a_cluster_one_node_measures_and_another_takes_over_when_it_leaves(tmp_path, etcd, minio):
    """The store is listed by the node rendezvous ranks first among the live ones, not by all of them
    (a node that starts before it sees its peers may measure once); when that node stops, the next one
    in the order measures."""
    cluster = Cluster(tmp_path, etcd, minio, nodes=3, ttl=3, env={"MEMOTURN_STORE_USAGE_INTERVAL_SECONDS": "1"})
    try:
        assert cluster.gateway.client.post("/v1/databases", json={"name": "usage"}).status_code == 201

        def stamps() -> dict[str, float]:
            return {
                node_id: _gauge(node.client.get("/metrics").text, "memoturn_store_usage_timestamp_seconds") or 0.0
                for node_id, node in cluster.nodes.items()
                if node.proc.poll() is None
            }

        def measuring(seconds: float) -> set[str]:
            """The nodes whose measurement advanced within ``seconds`` (several intervals)."""
            before = stamps()
            time.sleep(seconds)
            return {n for n, stamp in stamps().items() if stamp > before.get(n, 0.0)}

        first = rendezvous(MEASURER_KEY, sorted(cluster.nodes))[0]
        deadline = time.monotonic() + 60
        while (seen := measuring(3)) != {first} and time.monotonic() < deadline:
            pass
        assert seen == {first}
        assert measuring(3) == {first}

        cluster.nodes[first].close()
        heir = rendezvous(MEASURER_KEY, sorted(set(cluster.nodes) - {first}))[0]
        deadline = time.monotonic() + 60
        while (seen := measuring(3)) != {heir} and time.monotonic() < deadline:
            pass
        assert seen == {heir}
    finally:
        cluster.close()
