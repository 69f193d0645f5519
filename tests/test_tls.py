"""TLS: memoturnd and the gateway serve HTTPS from a certificate pair, the gateway and the nodes
verify each other's https:// peers against a CA bundle, and the SDK and CLI verify the server.

Everything runs for real: certificates from openssl (``support.etcd.Certificates``), memoturnd
and gateway processes, etcd and MinIO.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from memoturn.client import AsyncMemoturn, Memoturn, ProblemError
from support.cluster import Cluster, Gateway
from support.etcd import Certificates
from support.nodes import Memoturnd

NODE_NAME = "memoturn-node.test"  # the one name on the nodes' certificate in the cluster test


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA; a server certificate for 127.0.0.1-3; and, from the same CA, a node certificate
    naming only ``NODE_NAME`` (as one cert-manager certificate for every pod would)."""
    c = Certificates(str(tmp_path_factory.mktemp("tls")), ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    c.node_cert, c.node_key = c._issue("node", "memoturn-node", f"DNS:{NODE_NAME}", "serverAuth,clientAuth")
    c.other_cert, c.other_key = c._issue("other", "memoturn-rotated", "IP:127.0.0.1", "serverAuth")
    return c


def _tls_env(cert: str, key: str) -> dict[str, str]:
    return {"MEMOTURN_TLS_CERT_FILE": cert, "MEMOTURN_TLS_KEY_FILE": key}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "MEMOTURN_CA_FILE"}
    return subprocess.run(
        [sys.executable, "-m", "memoturn.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**full_env, **(env or {})},
    )


def _served_serial(host: str, port: int) -> int:
    """The serial number of the certificate a new connection is served (not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    out = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der, capture_output=True, check=True
    )
    return int(out.stdout.decode().strip().split("=", 1)[1], 16)


def _file_serial(cert: str) -> int:
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-serial"], capture_output=True, check=True)
    return int(out.stdout.decode().strip().split("=", 1)[1], 16)


@pytest.fixture
def tls_node(tmp_path, certs):
    """One memoturnd over HTTPS (uvicorn), its certificate pair in files of its own (rotated by a test)."""
    cert, key = str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    node = Memoturnd(str(tmp_path / "node"), f"file://{tmp_path}/store", env=_tls_env(cert, key), ca_file=certs.ca)
    try:
        node.wait_ready()
        yield node
    finally:
        node.close()


def test_the_sdk_verifies_the_node_with_its_ca(tls_node, certs, monkeypatch):
    assert tls_node.url.startswith("https://")
    with Memoturn(tls_node.url, verify=certs.ca) as mt:
        mt.create_database("t")
        w = mt.database("t").kv_put("k", {"v": 1})
        assert mt.database("t").kv_get("k", min_txid=w.txid).data["value"] == {"v": 1}

    async def through_async() -> int:
        async with AsyncMemoturn(tls_node.url, verify=certs.ca) as amt:
            return (await amt.database("t").kv_get("k")).data["value"]["v"]

    assert asyncio.run(through_async()) == 1

    # MEMOTURN_CA_FILE is the default of verify.
    monkeypatch.setenv("MEMOTURN_CA_FILE", certs.ca)
    with Memoturn(tls_node.url) as mt:
        assert mt.health().data["status"] == "ok"
    monkeypatch.delenv("MEMOTURN_CA_FILE")

    # Without the CA: refused at once, with the certificate problem named.
    with Memoturn(tls_node.url, retries=0) as mt, pytest.raises(ProblemError) as err:
        mt.health()
    assert err.value.status == 0 and err.value.type == "unreachable"
    assert "TLS certificate verification failed" in err.value.detail
    assert "MEMOTURN_CA_FILE" in err.value.detail

    # verify=False: no check at all (the caller's explicit choice).
    with Memoturn(tls_node.url, verify=False) as mt:
        assert mt.health().data["status"] == "ok"

    # An unusable CA bundle is refused when the client is made.
    with pytest.raises(ValueError, match="CA bundle"):
        Memoturn(tls_node.url, verify=certs.server_key)


def test_plain_http_to_a_tls_port_fails_clearly(tls_node):
    plain = tls_node.url.replace("https://", "http://")
    with Memoturn(plain, retries=0) as mt, pytest.raises(ProblemError) as err:
        mt.health()
    assert err.value.type == "unreachable" and "use an https:// URL" in err.value.detail
    with pytest.raises(httpx.TransportError):
        httpx.get(plain + "/v1/health", timeout=10)


def test_the_cli_verifies_the_node_with_ca_file(tls_node, certs):
    ok = _cli("--url", tls_node.url, "--ca-file", certs.ca, "--json", "db", "list")
    assert ok.returncode == 0, ok.stderr
    from_env = _cli("--url", tls_node.url, "--json", "db", "list", env={"MEMOTURN_CA_FILE": certs.ca})
    assert from_env.returncode == 0, from_env.stderr

    refused = _cli("--url", tls_node.url, "db", "list")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "TLS certificate verification failed" in lines[0], refused.stderr

    bad = _cli("--url", tls_node.url, "--ca-file", str(certs.dir) + "/missing.crt", "db", "list")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "missing.crt" in bad.stderr


def test_a_rotated_certificate_is_served_without_a_restart(tls_node, certs, tmp_path):
    """cert-manager renews into the same Secret: the node picks the new pair up by itself."""
    host, port = "127.0.0.1", tls_node.port
    assert _served_serial(host, port) == _file_serial(certs.server_cert)
    # Swapped in as a Secret volume does it: written aside, then renamed into place.
    for src, dst in ((certs.other_cert, "tls.crt"), (certs.other_key, "tls.key")):
        shutil.copy(src, tmp_path / f".{dst}.new")
        os.replace(tmp_path / f".{dst}.new", tmp_path / dst)
    deadline = time.monotonic() + 60
    while _served_serial(host, port) != _file_serial(certs.other_cert):
        assert time.monotonic() < deadline, "the node never served the rotated certificate"
        time.sleep(0.2)
    with Memoturn(tls_node.url, verify=certs.ca) as mt:
        assert mt.health().data["status"] == "ok"
    assert tls_node.proc.poll() is None


def _start(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEMOTURN_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120, env={**clean, **env}
    )


def test_bad_tls_settings_stop_the_start_in_one_line(tmp_path, certs):
    base = {"MEMOTURN_DATA_DIR": str(tmp_path / "d"), "MEMOTURN_LISTEN": "127.0.0.1:1"}
    cases = [
        ({"MEMOTURN_TLS_CERT_FILE": certs.server_cert}, "MEMOTURN_TLS_KEY_FILE is not"),
        ({"MEMOTURN_TLS_KEY_FILE": certs.server_key}, "MEMOTURN_TLS_CERT_FILE is not"),
        (_tls_env(str(tmp_path / "nope.crt"), certs.server_key), "cannot read the TLS certificate"),
        (_tls_env(certs.server_cert, certs.client_key), "not a PEM certificate and its private key"),
        ({"MEMOTURN_NODE_CA_FILE": certs.server_key}, "cannot use the CA bundle"),
    ]
    for env, message in cases:
        r = _start("memoturn.server", {**base, **env})
        assert r.returncode == 2, (env, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    gateway = {"MEMOTURN_ETCD_ENDPOINTS": "127.0.0.1:1", "MEMOTURN_GATEWAY_LISTEN": "127.0.0.1:1"}
    for env, message in cases[:2] + cases[3:]:
        r = _start("memoturn.cluster.gateway", {**gateway, **env})
        assert r.returncode == 2, (env, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_the_granian_server_serves_https_too(tmp_path, certs):
    env = {**_tls_env(certs.server_cert, certs.server_key), "MEMOTURN_HTTP_SERVER": "granian"}
    node = Memoturnd(str(tmp_path / "node"), f"file://{tmp_path}/store", env=env, ca_file=certs.ca)
    try:
        node.wait_ready()
        with Memoturn(node.url, verify=certs.ca) as mt:
            assert mt.health().data["status"] == "ok"
        with Memoturn(node.url, retries=0) as mt, pytest.raises(ProblemError, match="certificate verification"):
            mt.health()
    finally:
        node.close()


@pytest.mark.slow
def test_a_cluster_speaks_tls_from_client_to_gateway_to_nodes(tmp_path, etcd, minio, certs):
    """Nodes reached by IP with one certificate naming ``NODE_NAME``: the gateway and the owner
    (streaming to its replica) verify them against the CA and that name."""
    peers = {"MEMOTURN_NODE_CA_FILE": certs.ca, "MEMOTURN_NODE_TLS_SERVER_NAME": NODE_NAME}
    nodes_env = {**_tls_env(certs.node_cert, certs.node_key), **peers, "MEMOTURN_REPLICAS": "1"}
    # The test's own node clients skip the name check (the nodes' certificate names no IP).
    trust = ssl.create_default_context(cafile=certs.ca)
    trust.check_hostname = False
    c = Cluster(
        tmp_path,
        etcd,
        minio,
        nodes=2,
        ttl=5,
        env=nodes_env,
        gateway_env={**_tls_env(certs.server_cert, certs.server_key), **peers},
        ca_file=trust,
    )
    try:
        assert c.gateway.url.startswith("https://")
        registered = c.gateway.client.get("/v1/cluster/nodes").json()["nodes"]
        assert sorted(n["url"] for n in registered) == sorted(n.url for n in c.nodes.values())
        assert all(n["url"].startswith("https://") for n in registered)

        with Memoturn(c.gateway.url, verify=certs.ca) as mt:
            mt.create_database("secure")
            db = mt.database("secure")
            for i in range(10):
                w = db.kv_put(f"k{i}", i)
            assert db.kv_get("k9", min_txid=w.txid).data["value"] == 9
            # A replica read: the owner streamed its segments to the other node over https.
            r = db.kv_get("k9", min_txid=w.txid, read_from="replica")
            assert r.data["value"] == 9
        owner = c.gateway.wait_owner("secure")
        metrics = httpx.get(f"{c.nodes[owner].url}/metrics", verify=trust, timeout=30).text
        sent = [line for line in metrics.splitlines() if line.startswith("memoturn_replication_segments_sent_total")]
        dropped = [
            line for line in metrics.splitlines() if line.startswith("memoturn_replication_segments_dropped_total")
        ]
        assert sent and float(sent[0].split()[-1]) > 0, metrics
        assert dropped and float(dropped[0].split()[-1]) == 0, dropped

        ok = _cli("--url", c.gateway.url, "--ca-file", certs.ca, "--json", "nodes")
        assert ok.returncode == 0, ok.stderr
        refused = _cli("--url", c.gateway.url, "nodes")
        assert refused.returncode == 2 and "TLS certificate verification failed" in refused.stderr

        # A gateway that checks the nodes against the host in their URL finds no node it can trust.
        (tmp_path / "strict").mkdir()
        strict = Gateway(
            etcd.endpoint,
            c.prefix,
            str(tmp_path / "strict"),
            attempts=2,
            env={"MEMOTURN_NODE_CA_FILE": certs.ca},
        )
        try:
            strict.wait_ready(len(c.nodes))
            r = strict.client.get("/v1/databases/secure/kv/k1")
            assert r.status_code == 503 and r.json()["type"] == "no-route", r.text
            assert "certificate" in r.json()["detail"], r.text
        finally:
            strict.close()
    finally:
        c.close()
