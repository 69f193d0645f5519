"""Bearer tokens: a namespace token never reaches another namespace; the admin token does all."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from memoturn.api.app import create_app
from memoturn.config import Settings
from memoturn.node import Node

ADMIN = {"Authorization": "Bearer admin-secret"}
A = {"Authorization": "Bearer token-a"}


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="auth", admin_token="admin-secret", tokens="nsa:token-a"),
                store=file_store)
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        yield c


def _status(r, status, type_=None):
    assert r.status_code == status, r.text
    if type_:
        assert r.json()["type"] == type_
    return r


def test_open_endpoints_and_missing_or_bad_tokens(client):
    assert client.get("/v1/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    r = _status(client.get("/v1/namespaces/nsa/profiles"), 401, "missing-token")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    _status(client.get("/v1/namespaces/nsa/profiles", headers={"Authorization": "Bearer nope"}), 401, "invalid-token")
    _status(client.get("/v1/namespaces/nsa/profiles", headers={"Authorization": "Basic abc"}), 401, "missing-token")


def test_a_namespace_token_reaches_its_namespace_only(client):
    ok = client.post("/v1/namespaces/nsa/profiles/p/memories", json={"content": "mine"}, headers=A)
    _status(ok, 201)
    _status(client.post("/v1/namespaces/nsb/profiles/p/memories", json={"content": "x"}, headers=A), 403, "wrong-namespace")
    _status(client.post("/v1/namespaces/nsb/profiles/p/memories", json={"content": "theirs"}, headers=ADMIN), 201)
    # Every way into B is closed to A's token: memory routes, the database routes, listings, admin, internal.
    for method, path, body in [
        ("GET", "/v1/namespaces/nsb/profiles", None),
        ("POST", "/v1/namespaces/nsb/profiles/p/recall", {"query": "theirs"}),
        ("GET", "/v1/databases/nsb--p/kv/x", None),
        ("POST", "/v1/databases/nsb--p/sql", {"statements": [{"sql": "SELECT 1"}]}),
        ("DELETE", "/v1/databases/nsb--p", None),
        ("GET", "/v1/databases", None),
        ("POST", "/v1/databases", {"name": "nsa--new"}),
        ("POST", "/v1/admin/tokens", {"namespace": "nsa"}),
        ("POST", "/internal/v1/replicate/nsb--p", None),
        ("GET", "/v1/databases/nsa-evil--p/kv/x", None),
    ]:
        r = client.request(method, path, json=body, headers=A)
        assert r.status_code == 403, (method, path, r.status_code)
    # A's token works on A's databases through the database routes too.
    _status(client.get("/v1/databases/nsa--p", headers=A), 200)
    _status(client.put("/v1/databases/nsa--p/kv/k", json={"value": 1}, headers=A), 200)


def test_minted_tokens_work_everywhere_and_revocation(client):
    minted = _status(client.post("/v1/admin/tokens", json={"namespace": "nsc"}, headers=ADMIN), 201).json()
    c = {"Authorization": f"Bearer {minted['token']}"}
    _status(client.post("/v1/namespaces/nsc/profiles/p/memories", json={"content": "c"}, headers=c), 201)
    _status(client.get("/v1/namespaces/nsa/profiles", headers=c), 403, "wrong-namespace")
    _status(client.delete(f"/v1/admin/tokens/{minted['token_sha256']}", headers=c), 403)
    _status(client.delete(f"/v1/admin/tokens/{minted['token_sha256']}", headers=ADMIN), 204)
    _status(client.post("/v1/admin/tokens", json={"namespace": "Bad NS"}, headers=ADMIN), 400, "invalid-name")
    _status(client.delete("/v1/admin/tokens/xyz", headers=ADMIN), 400, "invalid-token-id")


def test_revoked_token_is_refused_by_another_node(tmp_path, file_store, client):
    minted = client.post("/v1/admin/tokens", json={"namespace": "nsd"}, headers=ADMIN).json()
    client.delete(f"/v1/admin/tokens/{minted['token_sha256']}", headers=ADMIN)
    other = Node(Settings(data_dir=str(tmp_path / "other"), node_id="other", admin_token="admin-secret"), store=file_store)
    with TestClient(create_app(other), raise_server_exceptions=False) as c2:
        _status(c2.get("/v1/namespaces/nsd/profiles", headers={"Authorization": f"Bearer {minted['token']}"}), 401)
