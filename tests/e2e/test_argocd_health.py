"""The chart's Argo CD health checks (``charts/memoturn/argocd/*.lua``), run by a real Lua
interpreter (Debian's ``lua5.4``, from ``.ci/install-lua``) on objects whose status the operator's
own builders made: Healthy, Progressing and Degraded as Argo CD would show them.

Argo CD hands the script the live object as the global ``obj``; here each sample becomes a Lua
table constructor (no JSON library needed), the script runs with ``dofile`` and prints what it
returned.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from memoturn_operator.dataplane import NodeReadiness
from memoturn_operator.status import tenant_status
from support.helm import CHART
from support.processes import installed_binary

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WRONG_KEY = "object store unusable: InvalidAccessKeyId: The Access Key Id you provided does not exist"


@pytest.fixture(scope="module")
def lua() -> str:
    return installed_binary("MEMOTURN_LUA_BIN", "/usr/bin/lua5.4", "lua5.4", ".ci/install-lua")


def lua_literal(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"


def health(lua: str, script: str, obj: dict[str, Any]) -> tuple[str, str]:
    program = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = dofile({lua_literal(str(CHART / 'argocd' / script))})\n"
        "io.write(hs.status, '\\t', hs.message or '')\n"
    )
    r = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    status, _, message = r.stdout.partition("\t")
    return status, message


def _deployment(replicas: int, available: int, observed: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "availableReplicas": available, "updatedReplicas": replicas},
    }


def tenant(generation: int, status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": "acme", "namespace": "agents", "generation": generation},
    }
    if status is not None:
        body["status"] = status.model_dump(mode="json", exclude_none=True)
    return body


def test_a_ready_tenant_is_healthy(lua):
    ok = [NodeReadiness("acme-memoturn-node-0", True, "ok")]
    s = tenant_status(2, _deployment(1, 1), _deployment(1, 1), nodes=ok, now=NOW)
    assert health(lua, "health-memorytenant.lua", tenant(2, s)) == ("Healthy", "1/1 nodes and 1/1 gateways available")


def test_a_tenant_on_its_way_is_progressing(lua):
    assert health(lua, "health-memorytenant.lua", tenant(1, None))[0] == "Progressing"  # no status yet
    rolling = tenant_status(3, _deployment(2, 1, observed=0), _deployment(1, 1), now=NOW)
    status, message = health(lua, "health-memorytenant.lua", tenant(3, rolling))
    assert status == "Progressing" and message.startswith("RollingOut: ")
    ok = [NodeReadiness("n", True, "ok")]
    ready_before = tenant_status(3, _deployment(1, 1), _deployment(1, 1), nodes=ok, now=NOW)
    status, message = health(lua, "health-memorytenant.lua", tenant(4, ready_before))  # a newer spec, not seen
    assert status == "Progressing" and "generation 4" in message


def test_a_tenant_that_cannot_reach_its_store_is_degraded_with_the_cause(lua):
    wrong = [NodeReadiness("acme-memoturn-node-0", False, WRONG_KEY)]
    s = tenant_status(1, _deployment(1, 0), _deployment(1, 1), nodes=wrong, now=NOW)
    status, message = health(lua, "health-memorytenant.lua", tenant(1, s))
    assert status == "Degraded" and message.startswith("ObjectStoreUnreachable: ") and "InvalidAccessKeyId" in message
    lease = [NodeReadiness("acme-memoturn-node-0", False, "writer lease not held")]
    s = tenant_status(1, _deployment(1, 0), _deployment(1, 1), nodes=lease, now=NOW)
    assert health(lua, "health-memorytenant.lua", tenant(1, s)) == (
        "Degraded",
        "LeaseStoreUnreachable: 0/1 nodes and 1/1 gateways available; "
        "1/1 nodes cannot use etcd: acme-memoturn-node-0: writer lease not held",
    )
    unavailable = tenant_status(1, _deployment(2, 1), _deployment(1, 1), now=NOW)  # rolled out, one node down
    assert health(lua, "health-memorytenant.lua", tenant(1, unavailable))[0] == "Degraded"


def test_memory_branches_are_healthy_when_forked_and_degraded_when_refused(lua):
    def branch(status: dict[str, Any] | None) -> dict[str, Any]:
        return {"apiVersion": "memoturn.io/v1alpha1", "kind": "MemoryBranch", "metadata": {"name": "b"}} | (
            {"status": status} if status else {}
        )

    assert health(lua, "health-memorybranch.lua", branch(None))[0] == "Progressing"
    assert health(lua, "health-memorybranch.lua", branch({"phase": "Ready", "resolvedTxid": 42})) == (
        "Healthy",
        "forked at txid 42",
    )
    failed = {
        "phase": "Failed",
        "conditions": [{"type": "Ready", "status": "False", "reason": "not-found", "message": "no such checkpoint"}],
    }
    assert health(lua, "health-memorybranch.lua", branch(failed)) == ("Degraded", "not-found: no such checkpoint")
