"""What the statement deadline costs and what it buys (``python -m bench.sql_deadline``).

One node over a file store, one run:

* a KV put's latency, with the capture check (``Database._verify_captured``: two ``stat``
  calls) on and off (the only part of the deadline/capture machinery on the KV path);
* a one-statement SQL batch run in the node's interpreter (how user SQL ran before) vs in an
  SQL worker process (how it runs now);
* ``/v1/health`` latency over HTTP while a runaway statement runs until its deadline, vs idle.

Prints p50/p99 and writes ``bench/results/sql_deadline.json``.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from typing import Any

import httpx
import uvicorn
from memoturn.config import Settings
from memoturn.data import kv
from memoturn.server.api.app import create_app
from memoturn.server.node import Node
from memoturn.sql.execute import run_batch
from memoturn.storage.database import Database
from memoturn.storage.store.file import FileStore

from .storage import write_results

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "n": len(s),
        "p50_ms": round(statistics.median(s) * 1000, 3),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1000, 3),
    }


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="mt-deadline-")
    timeout = 3.0
    node = Node(
        Settings(data_dir=f"{tmp}/n", node_id="bench", statement_timeout_seconds=timeout),
        store=FileStore(f"{tmp}/store", fsync=False),
    )
    node.start()
    node.create_database("b")
    results: dict[str, Any] = {"statement_timeout_seconds": timeout}
    put = lambda: node.write("b", lambda c: kv.put(c, "k", '"v"', None), durable=False)  # noqa: E731 - a one-line helper next to its only use
    _time(put, 200)
    on = _time(put, 2000)
    original = Database._verify_captured
    Database._verify_captured = lambda self: None  # type: ignore[method-assign]
    off = _time(put, 2000)
    Database._verify_captured = original  # type: ignore[method-assign]
    results["kv_put_with_capture_check"] = _stats(on)
    results["kv_put_without_capture_check"] = _stats(off)

    batch = [("SELECT 1", [])]
    node.sql("b", batch)
    db = node.open("b")
    in_process = _time(
        lambda: db.read(
            lambda c: run_batch(
                c,
                db.path,
                batch,
                transaction=False,
                max_txn_bytes=1 << 30,
                max_result_bytes=1 << 20,
                cache_bytes=1 << 20,
            )
        ),
        300,
    )
    worker = _time(lambda: node.sql("b", batch), 300)
    results["sql_select1_in_node_interpreter"] = _stats(in_process)
    results["sql_select1_in_worker"] = _stats(worker)

    server = uvicorn.Server(
        uvicorn.Config(create_app(node, manage_lifecycle=False), host="127.0.0.1", port=0, log_level="warning")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
    idle = _time(lambda: client.get("/v1/health"), 300)
    done = threading.Event()
    answer: dict[str, Any] = {}

    def runaway() -> None:
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/databases/b/sql", json={"statements": [{"sql": RUNAWAY}]}, timeout=60
        )
        answer["status"], answer["type"] = r.status_code, r.json().get("type")
        done.set()

    t0 = time.perf_counter()
    threading.Thread(target=runaway, daemon=True).start()
    busy: list[float] = []
    while not done.is_set():
        busy.extend(_time(lambda: client.get("/v1/health"), 1))
    answer["seconds"] = round(time.perf_counter() - t0, 3)
    results["health_idle"] = _stats(idle)
    results["health_during_runaway_statement"] = _stats(busy)
    results["runaway_statement"] = answer
    server.should_exit = True
    th.join(5)
    node.stop()
    write_results("sql_deadline", results)


if __name__ == "__main__":
    main()
