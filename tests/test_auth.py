"""Bearer tokens: a namespace token never reaches another namespace; the admin token does all."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node

ADMIN = {"Authorization": "Bearer admin-secret"}
A = {"Authorization": "Bearer token-a"}


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(
        Settings(data_dir=str(tmp_path / "n"), node_id="auth", admin_token="admin-secret", tokens="nsa:token-a"),
        store=file_store,
    )
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
    _status(
        client.post("/v1/namespaces/nsb/profiles/p/memories", json={"content": "x"}, headers=A), 403, "wrong-namespace"
    )
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
    other = Node(
        Settings(data_dir=str(tmp_path / "other"), node_id="other", admin_token="admin-secret"), store=file_store
    )
    with TestClient(create_app(other), raise_server_exceptions=False) as c2:
        _status(c2.get("/v1/namespaces/nsd/profiles", headers={"Authorization": f"Bearer {minted['token']}"}), 401)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_namespace_that_is_a_prefix_of_another_reaches_only_its_own(client):
    """Issue 12: 'acme' used to reach 'acme---x' (and list '-x') by string prefix."""
    _status(client.post("/v1/admin/tokens", json={"namespace": "acme-"}, headers=ADMIN), 400, "invalid-name")
    acme = _bearer(
        _status(client.post("/v1/admin/tokens", json={"namespace": "acme"}, headers=ADMIN), 201).json()["token"]
    )
    acme_b = _bearer(
        _status(client.post("/v1/admin/tokens", json={"namespace": "acme-b"}, headers=ADMIN), 201).json()["token"]
    )
    _status(client.post("/v1/namespaces/acme/profiles/mine/memories", json={"content": "acme's"}, headers=acme), 201)
    _status(client.post("/v1/namespaces/acme-b/profiles/x/memories", json={"content": "acme-b's"}, headers=acme_b), 201)
    # Names no namespace owns: only the admin can make (and reach) them.
    for odd in ("acme---x", "acme--x--y"):
        _status(client.post("/v1/databases", json={"name": odd}, headers=ADMIN), 201)
        _status(client.put(f"/v1/databases/{odd}/kv/k", json={"value": 1}, headers=ADMIN), 200)
    for db in ("acme-b--x", "acme---x", "acme--x--y"):
        for method, path, body in [
            ("GET", f"/v1/databases/{db}", None),
            ("GET", f"/v1/databases/{db}/kv/k", None),
            ("PUT", f"/v1/databases/{db}/kv/k", {"value": "stolen"}),
            ("POST", f"/v1/databases/{db}/sql", {"statements": [{"sql": "SELECT 1"}]}),
            ("POST", f"/v1/databases/{db}/branches", {"name": "fork"}),
            ("DELETE", f"/v1/databases/{db}", None),
        ]:
            r = client.request(method, path, json=body, headers=acme)
            assert (r.status_code, r.json().get("type")) == (403, "wrong-namespace"), (method, path, r.text)
    _status(client.get("/v1/namespaces/acme-b/profiles", headers=acme), 403, "wrong-namespace")
    # acme's listing shows acme's profiles only, and acme-b's own listing is untouched.
    assert _status(client.get("/v1/namespaces/acme/profiles", headers=acme), 200).json()["profiles"] == ["mine"]
    assert _status(client.get("/v1/namespaces/acme-b/profiles", headers=acme_b), 200).json()["profiles"] == ["x"]
    # Nothing was written through the attempts above, and acme still reaches its own database.
    _status(client.get("/v1/databases/acme-b--x/kv/k", headers=acme_b), 404)
    assert client.get("/v1/databases/acme---x/kv/k", headers=ADMIN).json()["value"] == 1
    _status(client.put("/v1/databases/acme--mine/kv/k", json={"value": 2}, headers=acme), 200)
    _status(client.post("/v1/databases/acme--mine/branches", json={"name": "f"}, headers=acme), 201)


def test_profile_listing_pages_past_names_of_no_profile(client):
    """Skipped names (acme---x sorts before acme--a) must not end the listing early."""
    for odd in ("acme---a", "acme---b"):
        _status(client.post("/v1/databases", json={"name": odd}, headers=ADMIN), 201)
    for p in ("a", "b"):
        _status(client.post("/v1/databases", json={"name": f"acme--{p}"}, headers=ADMIN), 201)
    seen, cursor = [], None
    for _ in range(10):
        page = _status(
            client.get(
                "/v1/namespaces/acme/profiles",
                params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                headers=ADMIN,
            ),
            200,
        ).json()
        seen += page["profiles"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["a", "b"]


def test_static_tokens_must_name_valid_namespaces(tmp_path, file_store):
    with pytest.raises(ValueError, match="acme-"):
        Node(
            Settings(data_dir=str(tmp_path / "n"), node_id="s", admin_token="admin-secret", tokens="acme-:tok"),
            store=file_store,
        )


@pytest.fixture
def clocked(tmp_path, file_store):
    """Two nodes on one store, each with a clock the test moves (expiry is wall-clock time)."""
    now = {"t": 1_700_000_000.0}
    apps = []
    for name in ("one", "two"):
        node = Node(Settings(data_dir=str(tmp_path / name), node_id=name, admin_token="admin-secret"), store=file_store)
        node.auth.clock = lambda: now["t"]
        apps.append(TestClient(create_app(node), raise_server_exceptions=False))
    with apps[0] as one, apps[1] as two:
        yield now, one, two


def test_a_minted_token_expires_on_every_node_even_when_cached(clocked, file_store):
    now, one, two = clocked
    minted = _status(
        one.post("/v1/admin/tokens", json={"namespace": "nse", "ttl_seconds": 60}, headers=ADMIN), 201
    ).json()
    assert minted["expires_at"] == now["t"] + 60
    stored = json.loads(file_store.get(f"auth/tokens/{minted['token_sha256']}.json")[0])
    assert stored["expires_at"] == now["t"] + 60 and stored["namespace"] == "nse"
    tok = _bearer(minted["token"])
    for c in (one, two):
        _status(c.post("/v1/namespaces/nse/profiles/p/memories", json={"content": "m"}, headers=tok), 201)
    # Take the record away behind the nodes' backs: from now on only their caches know the token.
    file_store.delete(f"auth/tokens/{minted['token_sha256']}.json")
    now["t"] += 59
    for c in (one, two):
        _status(c.get("/v1/namespaces/nse/profiles", headers=tok), 200)  # served from the cache
    now["t"] += 1
    for c in (one, two):
        r = _status(c.get("/v1/namespaces/nse/profiles", headers=tok), 401, "token-expired")
        assert r.headers["WWW-Authenticate"] == "Bearer"
        _status(c.get("/v1/databases/nse--p/kv/k", headers=tok), 401, "token-expired")
    # The admin token and static tokens have no expiry.
    _status(one.get("/v1/namespaces/nse/profiles", headers=ADMIN), 200)


def test_a_token_expires_at_a_given_time_on_a_node_that_never_saw_it(clocked):
    now, one, two = clocked
    at = now["t"] + 3600
    minted = _status(
        one.post("/v1/admin/tokens", json={"namespace": "nsf", "expires_at": at}, headers=ADMIN), 201
    ).json()
    assert minted["expires_at"] == at
    now["t"] = at
    _status(two.get("/v1/namespaces/nsf/profiles", headers=_bearer(minted["token"])), 401, "token-expired")
    forever = _status(one.post("/v1/admin/tokens", json={"namespace": "nsf"}, headers=ADMIN), 201).json()
    assert forever["expires_at"] is None
    now["t"] += 10 * 365 * 86400
    _status(two.get("/v1/namespaces/nsf/profiles", headers=_bearer(forever["token"])), 200)


@pytest.mark.parametrize(
    "body, status, type_",
    [
        ({"ttl_seconds": 0}, 422, "invalid-request"),
        ({"ttl_seconds": -5}, 422, "invalid-request"),
        ({"ttl_seconds": "60"}, 422, "invalid-request"),
        ({"ttl_seconds": 1.5}, 422, "invalid-request"),
        ({"ttl_seconds": True}, 422, "invalid-request"),
        ({"ttl_seconds": 10**12}, 400, "invalid-expiry"),
        ({"expires_at": 1.0}, 400, "invalid-expiry"),
        ('{"namespace": "nsg", "expires_at": Infinity}', 400, "malformed-json"),
        ({"ttl_seconds": 60, "expires_at": 4_000_000_000.0}, 400, "invalid-expiry"),
    ],
)
def test_token_expiry_is_validated_at_mint(client, body, status, type_):
    if isinstance(body, str):
        r = client.post("/v1/admin/tokens", content=body, headers={**ADMIN, "Content-Type": "application/json"})
    else:
        r = client.post("/v1/admin/tokens", json={"namespace": "nsg", **body}, headers=ADMIN)
    _status(r, status, type_)
