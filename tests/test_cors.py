"""Browser pages on other origins, allowed by MEMOTURN_CORS_ORIGINS: preflights answered without a
token, the Memoturn headers allowed and exposed, other origins refused, the token still required;
on a real memoturnd, a real gateway, and in Debian's chromium (a page on another origin calling
the node with fetch)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.cluster import Cluster
from support.nodes import Memoturnd, free_port
from test_dashboard import BROWSER_TESTS, _chromium, _needed, _playwright_core

TOKEN = "cors-admin-token"
PAGE_ORIGIN_HOST = "127.0.0.3"


def _page_server(host: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A plain page on its own origin (another loopback address: another origin for the browser)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>an app page</title><p>app</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


@pytest.fixture(scope="module")
def page() -> Iterator[str]:
    server, url = _page_server(PAGE_ORIGIN_HOST)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, page: str) -> Iterator[Memoturnd]:
    data = tmp_path_factory.mktemp("cors") / "data"
    node = Memoturnd(
        str(data),
        f"file://{data}/store",
        env={"MEMOTURN_ADMIN_TOKEN": TOKEN, "MEMOTURN_CORS_ORIGINS": f"{page}, https://app.example"},
    )
    try:
        node.wait_ready()
        yield node
    finally:
        node.close()


def _preflight(client: httpx.Client, path: str, origin: str, method: str, headers: str) -> httpx.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def _check_cors(client: httpx.Client, origin: str) -> None:
    r = _preflight(client, "/v1/databases/d/kv/k", origin, "PUT", "authorization, content-type, memoturn-durability")
    assert r.status_code == 200, r.text  # answered without a token
    assert r.headers["access-control-allow-origin"] == origin
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert "memoturn-durability" in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers

    refused = _preflight(client, "/v1/databases/d/kv/k", "https://evil.example", "PUT", "authorization")
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

    auth = {"Authorization": f"Bearer {TOKEN}", "Origin": origin}
    client.post("/v1/databases", json={"name": "d"}, headers=auth)
    put = client.put("/v1/databases/d/kv/k", json={"value": 1}, headers=auth)
    assert put.status_code == 200 and put.headers["access-control-allow-origin"] == origin
    assert "memoturn-txid" in put.headers["access-control-expose-headers"].lower()
    anonymous = client.get("/v1/databases/d/kv/k", headers={"Origin": origin})
    assert anonymous.status_code == 401  # CORS lets a page ask; the token still decides
    other = client.get("/v1/databases/d/kv/k", headers={**auth, "Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_the_node_answers_allowed_origins_only(daemon: Memoturnd) -> None:
    _check_cors(daemon.client, "https://app.example")


def test_without_the_setting_no_cors_headers(tmp_path: Path) -> None:
    node = Memoturnd(str(tmp_path / "n"), f"file://{tmp_path}/store")
    try:
        node.wait_ready()
        r = _preflight(node.client, "/v1/databases", "https://app.example", "POST", "content-type")
        assert "access-control-allow-origin" not in r.headers
        assert (
            "access-control-allow-origin" not in node.client.get("/v1/ready", headers={"Origin": "https://a.b"}).headers
        )
    finally:
        node.close()


@pytest.mark.parametrize("bad", ["app.example", "https://app.example/path", "ftp://x", "*, https://a.b"])
def test_a_bad_origin_setting_is_a_one_line_exit(tmp_path: Path, bad: str) -> None:
    for command in (["memoturn.server"], ["memoturn.cluster.gateway", "--etcd", "127.0.0.1:9"]):
        r = subprocess.run(
            [sys.executable, "-m", *command],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "MEMOTURN_CORS_ORIGINS": bad, "MEMOTURN_DATA_DIR": str(tmp_path)},
        )
        assert r.returncode == 2, (command, r.stderr)
        assert "MEMOTURN_CORS_ORIGINS" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_gateway_answers_preflights_itself(tmp_path: Path, etcd, minio) -> None:  # type: ignore[no-untyped-def]
    cluster = Cluster(
        tmp_path,
        etcd,
        minio,
        nodes=1,
        env={"MEMOTURN_ADMIN_TOKEN": TOKEN},
        gateway_env={"MEMOTURN_CORS_ORIGINS": "https://app.example"},
    )
    try:
        _check_cors(cluster.gateway.client, "https://app.example")
    finally:
        cluster.close()


def test_a_page_on_another_origin_uses_the_node_in_chromium(daemon: Memoturnd, page: str) -> None:
    node = shutil.which("node")
    if not node:
        _needed("no node (Node.js) to run tests/browser")
    other, other_url = _page_server("127.0.0.4")
    try:
        run = subprocess.run(
            [str(node), "--test", "--test-reporter=spec", "--test-concurrency=1", "cors.test.mjs"],
            cwd=BROWSER_TESTS,
            env={
                **os.environ,
                "MEMOTURN_URL": daemon.url,
                "MEMOTURN_TOKEN": TOKEN,
                "MEMOTURN_PAGE_URL": page,
                "MEMOTURN_OTHER_PAGE_URL": other_url,
                "MEMOTURN_CHROMIUM_BIN": _chromium(),
                "MEMOTURN_PLAYWRIGHT_CORE": _playwright_core(),
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        other.shutdown()
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert "pass 2" in run.stdout and "fail 0" in run.stdout, run.stdout[-2000:]
