"""The web dashboard (/ui/): its files and routes over HTTP, then the whole page in Debian's chromium.

The browser part is tests/browser/dashboard.test.mjs (playwright-core driving the distribution's
chromium, never a downloaded browser) against a real memoturnd this module seeds through the SDK.
It needs ``node``, chromium (``MEMOTURN_CHROMIUM_BIN``, from .ci/install-chromium) and
playwright-core (``MEMOTURN_PLAYWRIGHT_CORE``, from .ci/install-playwright-core; found or
installed here too). Under ``CI=1`` a missing part fails instead of skipping.

Screenshots land in the test's temporary directory; with ``MEMOTURN_DASHBOARD_RESULTS=path.json``
the first load's figures are written there and the screenshots copied beside it (``path/``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from memoturn.client import Memoturn
from memoturn.dashboard import ASSETS
from support.cluster import Cluster
from support.nodes import Memoturnd

ROOT = Path(__file__).resolve().parent.parent
BROWSER_TESTS = Path(__file__).resolve().parent / "browser"
TOKEN = "dashboard-admin-token"
NODE_ID = "dash-node"


def _needed(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI=1: the dashboard's browser tests must run)")
    pytest.skip(what)


def _chromium() -> str:
    found = os.environ.get("MEMOTURN_CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        _needed("no chromium: run .ci/install-chromium or set MEMOTURN_CHROMIUM_BIN")
    return str(found)


def _playwright_core() -> str:
    found = os.environ.get("MEMOTURN_PLAYWRIGHT_CORE")
    if not found:
        if not shutil.which("npm"):
            _needed("no npm to install playwright-core; set MEMOTURN_PLAYWRIGHT_CORE")
        out = subprocess.run(
            ["bash", str(ROOT / ".ci" / "install-playwright-core")], capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, out.stderr
        found = out.stdout.strip()
    return found


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("dashboard")
    proc = Memoturnd(
        str(data), f"file://{data}/store", env={"MEMOTURN_ADMIN_TOKEN": TOKEN, "MEMOTURN_NODE_ID": NODE_ID}
    )
    proc.wait_ready()
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def seed(daemon: Memoturnd) -> dict[str, Any]:
    """Memories with a supersession chain, a database with KV, documents and a checkpoint."""
    with Memoturn(daemon.url, token=TOKEN) as mt:
        alice = mt.profile("acme", "alice")
        alice.add("Bob plays chess on Sundays", type="fact")
        alice.add("The office is in Lisbon", type="fact")
        first = alice.add("Alice prefers green tea", type="preference", subject="drink")["memory"]
        as_of = int(first["valid_from"]) + 1  # a whole second after the first version, before the second
        while time.time() <= as_of + 0.2:
            time.sleep(0.05)
        alice.add("Alice switched to black coffee", type="preference", subject="drink")
        mt.profile("acme", "bob").add("Bob likes long walks", type="preference")
        mt.profile("globex", "carol").add("Carol runs the Tuesday standup", type="event")

        mt.create_database("notes")
        notes = mt.database("notes")
        for i in range(5):
            notes.kv_put(f"note/{i}", {"text": f"note number {i}"})
        checkpoint = notes.checkpoint("seeded")["txid"]
        for i in range(5, 8):
            last = notes.kv_put(f"note/{i}", {"text": f"note number {i}"})
    docs = httpx.post(
        f"{daemon.url}/v1/databases/notes/collections/tickets/documents",
        json={"id": "T-1", "body": {"title": "Dashboard", "state": "open"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert docs.status_code == 201, docs.text
    minted = httpx.post(
        f"{daemon.url}/v1/admin/tokens", json={"namespace": "acme"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert minted.status_code == 201, minted.text
    head = int(docs.headers["Memoturn-Txid"])
    assert head > last.txid > checkpoint
    return {
        "namespace": "acme",
        "profile": "alice",
        "query": "Which coffee does Alice drink?",
        "expected_hit": "black coffee",
        "chain": ["Alice prefers green tea", "Alice switched to black coffee"],
        "as_of_local": datetime.fromtimestamp(as_of, UTC).strftime("%Y-%m-%dT%H:%M:%S"),  # the page runs in UTC
        "database": "notes",
        "kv_key": "note/7",
        "collection": "tickets",
        "document_id": "T-1",
        "checkpoint": "seeded",
        "checkpoint_txid": checkpoint,
        "head_txid": head,
        "node_id": NODE_ID,
        "namespace_token": minted.json()["token"],
        "namespace_profiles": ["alice", "bob"],
    }


def test_the_files_need_no_token_and_allow_only_this_origin(daemon: Memoturnd) -> None:
    c = daemon.client
    redirect = c.get("/ui")
    assert redirect.status_code == 308 and redirect.headers["location"].endswith("/ui/")
    page = c.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = c.get("/ui/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert c.get("/ui/app.css").headers["content-type"].startswith("text/css")
    assert c.get("/ui/missing.js").status_code == 404
    assert c.get("/v1/databases").status_code == 401  # the API still wants the token
    assert c.get("/ui/../v1/databases").status_code in (401, 404)  # no way around it through /ui


def test_the_assets_name_no_other_origin() -> None:
    """No CDN, font service or analytics: the page loads only what the node serves."""
    names = sorted(p.name for p in ASSETS.iterdir())
    assert names == ["app.css", "app.js", "index.html"]
    for path in ASSETS.iterdir():
        text = path.read_text()
        for marker in ("http://", "https://", "//cdn", "@import"):
            assert marker not in text, f"{path.name} names {marker}"


def test_cluster_status_and_collections(daemon: Memoturnd, seed: dict[str, Any]) -> None:
    admin = {"Authorization": f"Bearer {TOKEN}"}
    status = daemon.client.get("/v1/cluster/status", headers=admin).json()
    assert status["node_id"] == NODE_ID and status["ready"] is True and status["clustered"] is False
    assert [n["id"] for n in status["nodes"]] == [NODE_ID]
    notes = next(b for b in status["branches"] if b["key"] == "notes/main")
    assert notes["owner"] == NODE_ID and notes["tier"] == "hot"
    assert notes["unshipped_txids"] == notes["head_txid"] - notes["shipped_txid"] >= 0
    assert status["unshipped_txids"] >= 0

    minted = daemon.client.post("/v1/admin/tokens", json={"namespace": "acme"}, headers=admin).json()["token"]
    refused = daemon.client.get("/v1/cluster/status", headers={"Authorization": f"Bearer {minted}"})
    assert refused.status_code == 403 and refused.json()["type"] == "wrong-namespace"

    listed = daemon.client.get("/v1/databases/notes/collections", headers=admin)
    assert listed.status_code == 200
    assert listed.json()["collections"] == [{"name": "tickets", "documents": 1}]
    assert int(listed.headers["Memoturn-Txid"]) == listed.json()["txid"] >= seed["head_txid"]
    missing = daemon.client.get("/v1/databases/nope/collections", headers=admin)
    assert missing.status_code == 404


def test_the_dashboard_in_chromium(daemon: Memoturnd, seed: dict[str, Any], tmp_path: Path) -> None:
    """Log in, recall with the rank breakdown, a supersession chain, as-of, fork/rewind/undo, the cluster
    view, then a namespace token that sees its namespace only."""
    node = shutil.which("node")
    if not node:
        _needed("no node (Node.js) to run tests/browser")
    shots = tmp_path / "screenshots"
    figures = tmp_path / "first-load.json"
    env = {
        **os.environ,
        "MEMOTURN_URL": daemon.url,
        "MEMOTURN_TOKEN": TOKEN,
        "MEMOTURN_CHROMIUM_BIN": _chromium(),
        "MEMOTURN_PLAYWRIGHT_CORE": _playwright_core(),
        "MEMOTURN_SCREENSHOTS": str(shots),
        "MEMOTURN_LOAD_FIGURES": str(figures),
        "MEMOTURN_SEED": json.dumps(seed),
    }
    run = subprocess.run(
        [str(node), "--test", "--test-reporter=spec", "--test-concurrency=1", "dashboard.test.mjs"],
        cwd=BROWSER_TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(run.stdout[-6000:], run.stderr[-3000:])
    assert run.returncode == 0, (
        f"browser tests failed; screenshots in {shots}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    )
    taken = sorted(p.name for p in shots.iterdir())
    assert len(taken) == 10, taken
    load = json.loads(figures.read_text())
    results = os.environ.get("MEMOTURN_DASHBOARD_RESULTS")
    if results:
        out = Path(results)
        shutil.copytree(shots, out.with_suffix(""), dirs_exist_ok=True)
        chromium = subprocess.run([env["MEMOTURN_CHROMIUM_BIN"], "--version"], capture_output=True, text=True)
        out.write_text(
            json.dumps(
                {
                    "what": "the dashboard's first load (/ui/ to the login form) against a local memoturnd, headless chromium",
                    "browser": chromium.stdout.strip(),
                    "first_load": load,
                    "screenshots": taken,
                },
                indent=2,
            )
            + "\n"
        )


def test_the_gateway_serves_the_dashboard_and_routes_its_calls(tmp_path: Path, etcd: Any, minio: Any) -> None:
    cluster = Cluster(tmp_path, etcd, minio, nodes=1)
    try:
        gw = cluster.gateway.client
        page = gw.get("/ui/")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        assert gw.get("/ui").status_code == 308
        status = gw.get("/v1/cluster/status")  # routed to a node like any other call
        assert status.status_code == 200, status.text
        assert status.json()["clustered"] is True
        assert [n["id"] for n in status.json()["nodes"]] == ["n0"]
    finally:
        cluster.close()
