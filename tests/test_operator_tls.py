"""The operator's side of a TLS tenant: it probes node pods over HTTPS, trusting the tenant's
``ca.crt`` (the chain is checked, the host name is not: pods are reached by IP), and calls the
gateway by its Service name with that CA. A real HTTPS server with a certificate from a CA made
here by ``openssl``."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from memoturn_operator import dataplane


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, and a server certificate it signed for a DNS name (not 127.0.0.1)."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=memoturn-test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=node", "-keyout", "tls.key", "-out", "tls.csr",
             cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=DNS:*.acme-memoturn-node.agents.svc\n")
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "ext.cnf", "-out", "tls.crt", cwd=d)  # fmt: skip
    return d


@pytest.fixture(scope="module")
def https_node(pki):
    """A stand-in for a node's /v1/ready and /metrics over HTTPS."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = (
                json.dumps({"status": "ready"}).encode() if self.path == "/v1/ready" else b"memoturn_hot_databases 5\n"
            )
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "tls.crt", pki / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_nodes_are_probed_over_https_trusting_the_tenants_ca(pki, https_node):
    trust = dataplane.tls_context((pki / "ca.crt").read_text())
    answer = dataplane.probe("pod", "127.0.0.1", https_node, "https", trust)
    assert answer.ready is True, answer
    load = dataplane.scrape("pod", "127.0.0.1", https_node, "https", trust)
    assert load is not None and load.hot == 5
    # Without the tenant's CA the certificate is not trusted: no answer, never a false "ready".
    untrusted = dataplane.probe("pod", "127.0.0.1", https_node, "https", dataplane.tls_context(None))
    assert untrusted.ready is None and "no answer" in untrusted.detail
    assert dataplane.scrape("pod", "127.0.0.1", https_node, "https", dataplane.tls_context(None)) is None


def test_the_gateway_is_called_by_its_service_name_with_the_tenants_ca(pki):
    pem = (pki / "ca.crt").read_text()
    with dataplane.client([("10.0.0.7", 7400)], "tok", tls_host="acme-memoturn-gateway.agents.svc", ca_pem=pem) as c:
        assert c.url == "https://acme-memoturn-gateway.agents.svc:7400"
    path = dataplane.ca_file(pem)
    assert path is not None and Path(path).read_text() == pem and dataplane.ca_file(pem) == path
    with dataplane.client([("10.0.0.7", 7400)], "tok") as plain:
        assert plain.url == "http://10.0.0.7:7400"
