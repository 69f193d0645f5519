"""Which cluster the e2e suite uses (support.testcluster): never a developer's KUBECONFIG unless
asked, and a one-line reason for everything an external cluster lacks."""

from __future__ import annotations

import pytest
from support import testcluster
from support.testcluster import ClusterUnusable, TestCluster, external_kubeconfig, kubelet_kind

VARS = (
    "MEMOTURN_E2E_KUBECONFIG",
    "MEMOTURN_E2E_EXTERNAL",
    "MEMOTURN_E2E_KUBELET",
    "MEMOTURN_E2E_ETCD_ENDPOINTS",
    *(f"MEMOTURN_E2E_S3_{v}" for v in testcluster.S3_VARS),
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in VARS:
        monkeypatch.delenv(name, raising=False)


def test_a_kubeconfig_alone_never_points_the_suite_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "mine"))
    assert external_kubeconfig() is None
    monkeypatch.setenv("MEMOTURN_E2E_EXTERNAL", "1")
    assert external_kubeconfig() == str(tmp_path / "mine")
    monkeypatch.setenv("MEMOTURN_E2E_KUBECONFIG", str(tmp_path / "given"))
    assert external_kubeconfig() == str(tmp_path / "given")  # the explicit one wins


def test_the_node_runtime_is_the_agent_unless_the_real_kubelet_exists(monkeypatch, tmp_path):
    assert kubelet_kind() == "agent"
    with pytest.raises(ClusterUnusable, match="use agent or real"):
        kubelet_kind("docker")
    monkeypatch.setattr(testcluster, "REAL_KUBELET", tmp_path / "realkubelet.py")
    with pytest.raises(ClusterUnusable, match="needs .*realkubelet.py"):
        kubelet_kind("real")
    (tmp_path / "realkubelet.py").write_text("")
    assert kubelet_kind("real") == "real"


def test_an_external_cluster_says_in_one_line_what_it_lacks(monkeypatch, tmp_path):
    with pytest.raises(ClusterUnusable, match="no kubeconfig at"):
        TestCluster.connect(str(tmp_path / "missing"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ClusterUnusable) as err:
        TestCluster.connect(str(kubeconfig))
    assert "set MEMOTURN_E2E_ETCD_ENDPOINTS" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("MEMOTURN_E2E_ETCD_ENDPOINTS", "127.0.0.1:2379")
    monkeypatch.setenv("MEMOTURN_E2E_S3_BUCKET", "b")
    with pytest.raises(ClusterUnusable) as err:
        TestCluster.connect(str(kubeconfig))
    message = str(err.value)
    assert "MEMOTURN_E2E_S3_ENDPOINT" in message and "MEMOTURN_E2E_S3_BUCKET" not in message
