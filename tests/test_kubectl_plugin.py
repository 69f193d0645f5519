"""``kubectl memoturn`` without a cluster: argument handling (one line, exit 2), the status view
built from a node's answer, and the bundle writer. The commands themselves run against a real
control plane in tests/e2e/test_day2.py."""

from __future__ import annotations

import argparse
import tarfile

import pytest
from memoturn_operator import kubectl_plugin as plugin


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
