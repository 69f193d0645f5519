"""Schemathesis against a real node: every operation of the published OpenAPI document, fed
generated input (valid and invalid), must never answer 5xx.

The node runs in-process over a FileStore and is seeded first (a database with KV keys,
documents, an index, vectors, a branch and a checkpoint; a memory profile), and generated path
parameters are mostly replaced by the seeded names, so most cases reach real data rather than
a 404. Destructive operations aim at scratch copies (or the seed is put back after them).

Generation is bounded (a few examples per operation, about a minute on two cores) and
derandomised, so CI sees the same cases each run; ``MEMOTURN_FUZZ_EXAMPLES=N`` and
``MEMOTURN_FUZZ_RANDOM=1`` explore further by hand.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node
from memoturn.storage.store.file import FileStore
from schemathesis import GenerationMode

EXAMPLES = int(os.environ.get("MEMOTURN_FUZZ_EXAMPLES", "25"))
DB, NS, PROFILE, SCRATCH = "app", "acme", "alice", "scratch"
KEYS = {"k1": {"n": 1}, "a/b": [1, "two", None]}
DOCS = {"ana": {"name": "Ana", "age": 34, "tags": ["x"]}, "ben": {"name": "Ben", "age": 27}}
VECTORS = {"v1": [1.0, 0.0, 0.0], "v2": [0.0, 1.0, 0.5]}
MEMORIES = f"/v1/namespaces/{NS}/profiles/{PROFILE}/memories"
MEMORY_SEED = (
    {"content": "Alice lives in Lisbon", "subject": "home", "tags": ["place"]},
    {"content": "Alice likes green tea", "type": "preference"},
)


class Seed:
    """The data the cases aim at, and how to put it back after a destructive case."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.memory_ids: list[str] = []

    def _ok(self, r: Any, *also: int) -> Any:
        assert r.status_code < 300 or r.status_code in also, r.text
        return r

    def create(self) -> None:
        c = self.client
        for name in (DB, SCRATCH):
            self._ok(c.post("/v1/databases", json={"name": name}), 409)
        self._ok(c.post(f"/v1/databases/{DB}/collections/users/indexes", json={"path": "name"}))
        self._ok(c.put(f"/v1/databases/{DB}/vectors/emb", json={"dimensions": 3}), 409)
        self.restore()
        self._ok(
            c.post(f"/v1/namespaces/{NS}/profiles/{SCRATCH}/memories", json={"content": "scratch", "embedding": [1, 0]})
        )

    def restore(self) -> None:
        c = self.client
        self._ok(c.post("/v1/databases", json={"name": SCRATCH}), 409)
        for key, value in KEYS.items():
            self._ok(c.put(f"/v1/databases/{DB}/kv/{key}", json={"value": value}))
        for doc_id, body in DOCS.items():
            self._ok(c.post(f"/v1/databases/{DB}/collections/users/documents", json={"id": doc_id, "body": body}), 409)
        self._ok(
            c.post(
                f"/v1/databases/{DB}/vectors/emb/upsert",
                json={"items": [{"id": i, "vector": v, "metadata": {"i": i}} for i, v in VECTORS.items()]},
            )
        )
        if not self.memory_ids or any(c.get(f"{MEMORIES}/{i}").status_code == 404 for i in self.memory_ids):
            # The server embedder's dimension (384), so recall without an embedding works too.
            self.memory_ids = [
                self._ok(
                    c.post(MEMORIES, json={**m, "embedding": [1.0 if j == n else 0.0 for j in range(384)]})
                ).json()["memory"]["id"]
                for n, m in enumerate(MEMORY_SEED)
            ]
        self._ok(c.post(f"/v1/databases/{DB}/branches/main/checkpoints", json={"name": "cp1"}), 409)
        self._ok(c.post(f"/v1/databases/{DB}/branches", json={"name": "feature"}), 409)
        self._ok(c.post(f"/v1/databases/{DB}/branches/feature/checkpoints", json={"name": "cp1"}), 409)
        self._ok(
            c.post(f"/v1/namespaces/{NS}/profiles/{SCRATCH}/memories", json={"content": "scratch", "embedding": [1, 0]})
        )


def _pick(generated: Any, *seeded: str) -> Any:
    """Mostly a seeded name, sometimes the generated one (stable across runs: crc32, not hash())."""
    options = [*seeded, generated]
    return options[zlib.crc32(repr(generated).encode()) % len(options)] if len(seeded) else generated


def aim(case: Any, seed: Seed) -> None:
    """Point a generated case at the seeded data."""
    path, method, p = case.path, case.method.upper(), case.path_parameters
    if p is None:
        return
    if "db" in p:
        p["db"] = SCRATCH if (method == "DELETE" and path == "/v1/databases/{db}") else DB
    if "namespace" in p:
        p["namespace"] = NS
    if "profile" in p:
        p["profile"] = SCRATCH if (method == "DELETE" and path.endswith("{profile}")) else PROFILE
    if "collection" in p:
        p["collection"] = "emb" if "/vectors/" in path else "users"
    if "key" in p:
        p["key"] = _pick(p["key"], *KEYS)
    if "doc_id" in p:
        p["doc_id"] = _pick(p["doc_id"], *DOCS)
    if "item_id" in p:
        p["item_id"] = _pick(p["item_id"], *VECTORS)
    if "memory_id" in p:
        p["memory_id"] = _pick(p["memory_id"], *seed.memory_ids)
    if "branch" in p:
        # Rewinding or deleting main would take the seed with it: those aim at the fork.
        p["branch"] = (
            "feature" if (method == "DELETE" or path.endswith("rewind")) else _pick(p["branch"], "main", "feature")
        )
    if "name" in p:
        p["name"] = _pick(p["name"], "cp1")
    if case.query and "branch" in case.query:
        case.query["branch"] = _pick(case.query["branch"], "main", "feature")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    store = FileStore(str(tmp / "store"), fsync=False)
    node = Node(
        Settings(data_dir=str(tmp / "n"), node_id="fuzz", min_txid_wait_seconds=0.01, gc_interval_seconds=0),
        store=store,
    )
    node.start()
    app = create_app(node, manage_lifecycle=False)
    seed = Seed(TestClient(app, raise_server_exceptions=False))
    seed.create()
    yield app, seed
    node.stop()
    store.close()


def _examples(operation: Any, seed: Seed, failures: list[str], counts: dict[str, int]) -> None:
    """Valid and invalid cases for one operation; a 5xx is recorded (shrunk), and the run goes on."""
    modes = [operation.as_strategy(generation_mode=m) for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]

    @given(case=st.one_of(*modes))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("MEMOTURN_FUZZ_RANDOM") != "1",
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        aim(case, seed)
        counts["cases"] += 1
        try:
            response = case.call()
        except Exception as exc:  # the in-process client re-raises what the app did not handle
            raise AssertionError(
                f"crash on {case.method.upper()} {case.formatted_path}: {exc!r}\n  reproduce: {case.as_curl_command()}"
            ) from exc
        try:
            assert response.status_code < 500, (
                f"{response.status_code} from {case.method.upper()} {case.formatted_path}: {response.text[:300]}\n"
                f"  reproduce: {case.as_curl_command()}"
            )
        finally:
            if case.method.upper() == "DELETE" or case.path.endswith(("rewind", "/memories/forget")):
                seed.restore()

    try:
        run()
    except AssertionError as exc:
        failures.append(f"{operation.label}: {exc}")


def test_no_operation_answers_5xx(seeded):
    """Whatever the input, every operation answers a success or a 4xx problem: a 5xx is a bug.

    (One test over all operations: schemathesis's pytest integration, ``from_fixture`` and
    ``parametrize``, reads ``Function._nodeid``, which pytest 9 no longer has.)
    """
    app, seed = seeded
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    counts = {"cases": 0}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        _examples(operation, seed, failures, counts)
    print(f"schemathesis: {counts['cases']} cases over {operations} operations, {len(failures)} with a 5xx")
    assert operations >= 40 and counts["cases"] >= 10 * operations
    assert not failures, f"{len(failures)} operations answered 5xx:\n" + "\n".join(failures)
