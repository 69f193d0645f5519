"""``make cluster`` / ``make cluster-down`` through their entry point (``support.localcluster``):
up in the background, the example MemoryTenant applied as the printed command does, Ready with two
nodes, a write through its gateway, then down: every process the cluster started is gone (no kill
needed after the graceful stop) and its state directory removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from memoturn.client import Memoturn
from support.localcluster import marked_processes
from support.testcluster import api_client, wait_for

TESTS = Path(__file__).resolve().parents[1]


def localcluster(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "support.localcluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_make_cluster_runs_a_tenant_and_cluster_down_leaves_nothing_behind(tmp_path):
    state = tmp_path / "cluster"
    # Its own pod addresses: a developer's `make cluster` (127.0.30.x) may be running alongside.
    up = localcluster("up", "--dir", str(state), "--ip-prefix", "127.0.31")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"export KUBECONFIG={state / 'kubeconfig'}" in up.stdout
        assert "kubectl apply --server-side -f" in up.stdout and "make cluster-down" in up.stdout
        manifest = state / "memorytenant.yaml"
        tenant = next(d for d in yaml.safe_load_all(manifest.read_text()) if d["kind"] == "MemoryTenant")
        assert tenant["spec"]["etcd"]["endpoints"][0].startswith("127.0.0.1:")  # this cluster's etcd, filled in

        applied = localcluster("apply", str(manifest), "--dir", str(state), timeout=120)
        assert applied.returncode == 0, applied.stderr
        assert "memorytenant/example created" in applied.stdout
        _, api = api_client(str(state / "kubeconfig"))
        path = "/apis/memoturn.io/v1alpha1/namespaces/agents/memorytenants/example"

        def ready() -> bool:
            s = api.get(path).json().get("status") or {}
            return s.get("phase") == "Ready" and s.get("readyNodes") == 2

        wait_for(ready, 240, "the example tenant Ready with 2 nodes", interval=1)

        def gateway_exports() -> subprocess.CompletedProcess[str] | None:
            out = localcluster("gateway", "example", "--dir", str(state), timeout=60)
            return out if out.returncode == 0 else None

        gateway = wait_for(gateway_exports, 60, "the gateway command to name a ready gateway pod", interval=1)
        exports = dict(kv.split("=", 1) for kv in gateway.stdout.split()[1:])
        assert exports["MEMOTURN_URL"].startswith("http://127.0.31.")
        with Memoturn(exports["MEMOTURN_URL"], token=exports["MEMOTURN_TOKEN"], timeout=15, retries=2) as c:
            c.create_database("example--notes")
            put = c.database("example--notes").kv_put("greeting", "hello", durability="durable")
            assert c.database("example--notes").kv_get("greeting", min_txid=put.txid).data["value"] == "hello"
        # etcd, MinIO, three control-plane servers, the operator, and the tenant's pods (2 nodes, 1 gateway).
        assert len(marked_processes(state)) >= 9, marked_processes(state)
        api.close()
    finally:
        down = localcluster("down", "--dir", str(state), timeout=300)
    assert down.returncode == 0, down.stderr
    assert "stopped and removed" in down.stdout and "killed" not in down.stdout, down.stdout
    assert not state.exists()
    assert marked_processes(state) == []
    again = localcluster("down", "--dir", str(state), timeout=60)
    assert again.returncode == 0 and "no local cluster" in again.stdout
