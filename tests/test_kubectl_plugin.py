"""``kubectl memoturn`` without a cluster: argument handling (one line, exit 2), the status view
built from a node's answer, the bundle writer, and how a TLS tenant's pods are reached (URL, CA,
the name checked on the certificate), the last against a real memoturnd serving HTTPS. The
commands themselves run against a real control plane in tests/e2e/test_day2.py."""

from __future__ import annotations

import argparse
import ssl
import tarfile

import httpx
import pytest
from memoturn.client import ProblemError
from memoturn_operator import kubectl_plugin as plugin
from support.etcd import Certificates
from support.nodes import Memoturnd


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = plugin.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([], "the following arguments are required: COMMAND"),
        (["stats", "acme"], "invalid choice: 'stats'"),
        (["status"], "the following arguments are required: tenant"),
        (["status", "acme", "-o", "yaml"], "invalid choice: 'yaml'"),
        (["checkpoint", "acme", "db"], "the following arguments are required: name"),
        (["checkpoint", "acme", "db", "c", "--txid", "ten"], "invalid int value: 'ten'"),
        (["fork", "acme", "db", "b", "--txid", "3", "--checkpoint", "c"], "not allowed with argument --txid"),
        (["drain", "acme"], "the following arguments are required: node"),
        (["drain", "acme", "pod", "--timeout", "soon"], "invalid float value: 'soon'"),
        (["report", "acme"], "the following arguments are required: -o/--output"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("kubectl memoturn") and needle in err and err.count("\n") == 1, err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        plugin.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("status", "checkpoint", "fork", "rewind", "drain", "report", "release-finalizers"):
        assert command in text


def test_a_missing_kubeconfig_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, _, err = run(capsys, "--kubeconfig", str(tmp_path / "none"), "status", "acme")
    assert code == 2 and "no usable kubeconfig" in err and err.count("\n") == 1, err


def test_rewind_needs_a_point_in_time_and_a_real_timestamp():
    args = argparse.Namespace(txid=None, checkpoint=None, timestamp=None, tenant="acme", database="d", branch="main")
    with pytest.raises(plugin.PluginError) as err:
        plugin.rewind(None, args)  # type: ignore[arg-type]  # refused before any cluster access
    assert err.value.code == 2 and "one of --txid, --checkpoint or --timestamp" in str(err.value)
    with pytest.raises(plugin.PluginError) as err:
        plugin._timestamp("2026-11-22T10:00:00")  # no zone
    assert err.value.code == 2
    assert plugin._timestamp("2026-11-22T10:00:00Z") == 1795341600.0


POD = {
    "metadata": {"name": "acme-memoturn-node-a"},
    "status": {"phase": "Running", "podIP": "10.0.0.5", "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_a_node_row_counts_owned_branches_tiers_and_lag():
    answer = {
        "node_id": "acme-memoturn-node-a",
        "ready": True,
        "detail": "ok",
        "clustered": True,
        "owners": {"db/main": "acme-memoturn-node-a", "db/x": "acme-memoturn-node-b"},
        "branches": [{"key": "db/main", "tier": "hot"}, {"key": "db/y", "tier": "hot"}],
        "replicas": [{"key": "db/x"}],
        "replica_lag_txids": 3,
        "unshipped_txids": 0,
    }
    row = plugin.node_summary(POD, answer)
    assert row["owned"] == ["db/main"] and row["tiers"] == {"hot": 2} and row["replicaLagTxids"] == 3
    text = plugin.format_status(
        {"tenant": "ns/acme", "phase": "Ready", "readyNodes": 1, "endpoints": {}, "conditions": [], "nodes": [row]}
    )
    assert "owns 1" in text and "hot 2" in text and "lag 3 txids" in text and "owns db/main" in text
    silent = plugin.node_summary(POD, None, "ConnectError: refused")
    assert "no answer: ConnectError" in plugin.format_status(
        {"tenant": "ns/acme", "phase": None, "readyNodes": 0, "endpoints": {}, "conditions": [], "nodes": [silent]}
    )


def test_the_bundle_is_a_tar_gz_under_one_directory(tmp_path):
    path = tmp_path / "r.tar.gz"
    plugin.write_bundle(str(path), "memoturn-report-ns-acme", {"a.yaml": "x: 1\n", "nodes/n/metrics.txt": "m 1\n"})
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == [
            "memoturn-report-ns-acme/a.yaml",
            "memoturn-report-ns-acme/nodes/n/metrics.txt",
        ]
    with pytest.raises(plugin.PluginError) as err:
        plugin.write_bundle(str(tmp_path / "missing" / "r.tar.gz"), "r", {})
    assert err.value.code == 2 and "cannot write" in str(err.value)


# -- TLS tenants: which URL, which CA, which name on the certificate --------------------------------


def test_a_plain_tenant_is_reached_over_http_by_pod_ip():
    assert plugin.select_ca(None, False, lambda: pytest.fail("no Secret read without TLS")) is None
    gw = plugin.gateway_target("acme", "agents", tls=False, ca=None, endpoint=("10.1.2.3", 7400))
    assert gw == plugin.Target("http://10.1.2.3:7400", None, None)
    node = plugin.node_target("acme", "agents", "acme-memoturn-node-x", "10.1.2.4", tls=False, ca=None)
    assert node == plugin.Target("http://10.1.2.4:7411", None, None)


def test_a_tls_tenant_is_reached_over_https_checking_the_names_its_certificate_carries():
    ca = "/tmp/ca.pem"
    gw = plugin.gateway_target("acme", "agents", tls=True, ca=ca, endpoint=("10.1.2.3", 7400))
    assert gw == plugin.Target("https://10.1.2.3:7400", ca, "acme-memoturn-gateway.agents.svc")
    node = plugin.node_target("acme", "agents", "acme-memoturn-node-x", "fd00::4", tls=True, ca=ca)
    assert node == plugin.Target("https://[fd00::4]:7411", ca, "acme-memoturn-node-x.acme-memoturn-node.agents.svc")


@pytest.mark.parametrize(
    "url, server_name",
    [
        ("https://127.0.0.1:7400", "acme-memoturn-gateway.agents.svc"),  # a port-forward
        ("https://localhost:7400", "acme-memoturn-gateway.agents.svc"),
        ("https://memoturn.example.com", None),  # an Ingress: its own name is checked
    ],
)
def test_url_is_used_as_given_and_an_address_is_checked_for_the_gateway_service_name(url, server_name):
    gw = plugin.gateway_target("acme", "agents", tls=True, ca="/ca.pem", url=url)
    assert gw == plugin.Target(url, "/ca.pem", server_name)
    assert plugin.gateway_target("acme", "agents", tls=False, ca=None, url=url).server_name is None


def test_the_ca_is_the_flag_else_the_tenant_secrets_ca_crt_in_a_file_else_the_system_cas():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert plugin.select_ca("/mine.pem", True, lambda: pytest.fail("--ca-file wins")) == "/mine.pem"
    assert plugin.select_ca("/mine.pem", False, lambda: None) == "/mine.pem"  # an https --url to a plain tenant
    path = plugin.select_ca(None, True, lambda: pem)
    assert isinstance(path, str) and open(path).read() == pem
    assert plugin.select_ca(None, True, lambda: None) is True  # the Secret has no ca.crt


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_an_unusable_ca_file_is_one_line_and_exit_2(capsys, tmp_path, content):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "--ca-file", str(path), "status", "acme")
    assert code == 2 and out == ""
    assert err.startswith("kubectl memoturn: cannot use the CA bundle") and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def tenant_certs(tmp_path_factory):
    """A CA and the certificate cert-manager would issue a TLS tenant ``acme`` in ``agents``
    (docs/kubernetes.md): DNS names only, never a pod IP."""
    c = Certificates(str(tmp_path_factory.mktemp("tls")), ["127.0.0.1"])
    san = "DNS:*.acme-memoturn-node.agents.svc,DNS:acme-memoturn-gateway.agents.svc"
    c.tenant_cert, c.tenant_key = c._issue("tenant", "acme", san, "serverAuth")
    return c


@pytest.fixture(scope="module")
def tls_pod(tmp_path_factory, tenant_certs):
    """One memoturnd serving HTTPS with the tenant's certificate, on 127.0.0.1 (as a pod IP)."""
    tmp = tmp_path_factory.mktemp("pod")
    env = {"MEMOTURN_TLS_CERT_FILE": tenant_certs.tenant_cert, "MEMOTURN_TLS_KEY_FILE": tenant_certs.tenant_key}
    trust = ssl.create_default_context(cafile=tenant_certs.ca)
    trust.check_hostname = False  # the harness's own readiness poll; the plugin checks the names
    node = Memoturnd(str(tmp / "node"), f"file://{tmp}/store", env=env, ca_file=trust)
    try:
        node.wait_ready()
        yield node
    finally:
        node.close()


TLS_SPEC = {
    "image": "memoturn:0.1.0",
    "objectStore": {"bucket": "mem"},
    "etcd": {"endpoints": ["etcd:2379"]},
    "tls": {"secretName": "acme-tls"},
}
TLS_TENANT = {"metadata": {"name": "acme"}, "spec": TLS_SPEC}


def test_a_tls_node_pod_is_verified_by_ip_against_the_ca_and_its_pod_name(tls_pod, tenant_certs, monkeypatch):
    monkeypatch.setattr(plugin, "NODE_PORT", tls_pod.port)  # the pod's port; 127.0.0.1 is its IP
    pod = {"metadata": {"name": "acme-memoturn-node-x"}, "status": {"podIP": "127.0.0.1"}}
    cluster = plugin.Cluster(None, "agents", ca_flag=tenant_certs.ca)  # type: ignore[arg-type]  # no API read
    r = cluster.node_get(TLS_TENANT, pod, "/v1/health", None)
    assert r.status_code == 200

    elsewhere = plugin.Cluster(None, "other", ca_flag=tenant_certs.ca)  # type: ignore[arg-type]
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        elsewhere.node_get(TLS_TENANT, pod, "/v1/health", None)  # the name would be *.other.svc


def test_a_tls_gateway_behind_a_port_forward_is_verified_for_its_service_name(tls_pod, tenant_certs):
    cluster = plugin.Cluster(None, "agents", url=tls_pod.url, token="t", ca_flag=tenant_certs.ca)  # type: ignore[arg-type]
    with cluster.gateway(TLS_TENANT) as mt:
        mt.create_database("plugin-tls")
        assert mt.database("plugin-tls").kv_put("k", 1).txid

    elsewhere = plugin.Cluster(None, "other", url=tls_pod.url, token="t", ca_flag=tenant_certs.ca)  # type: ignore[arg-type]
    with elsewhere.gateway(TLS_TENANT) as mt, pytest.raises(ProblemError, match="certificate verification failed"):
        mt.create_database("plugin-tls-2")  # checked for acme-memoturn-gateway.other.svc: not on the certificate
