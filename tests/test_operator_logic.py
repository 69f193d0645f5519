"""The operator's decisions, as pure functions: branch forks and statuses, when a node pod
counts as gone, reading a node's load; and the lease revocation against a real etcd."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from memoturn_operator import branch, dataplane, failover
from memoturn_operator.models import MemoryBranchSpec

NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def test_fork_arguments_follow_the_spec():
    spec = MemoryBranchSpec.model_validate(
        {
            "tenant": "acme",
            "database": "acme--alice",
            "branch": "exp",
            "parent": {"timestamp": "2026-11-22T09:00:00Z"},
            "ttlSeconds": 60,
        }
    )
    args = branch.fork_arguments(spec)
    assert args == {"txid": None, "checkpoint": None, "timestamp": NOW.timestamp() - 3600, "ttl_seconds": 60.0}
    spec = MemoryBranchSpec.model_validate({"tenant": "acme", "database": "d", "branch": "b", "parent": {"txid": 7}})
    assert branch.fork_arguments(spec)["txid"] == 7 and branch.fork_arguments(spec)["ttl_seconds"] is None
    with pytest.raises(ValueError):
        branch.parse_time("2026-11-22T09:00:00")  # no zone: ambiguous, refused
    with pytest.raises(ValueError):
        branch.parse_time("yesterday")


def test_branch_status_reports_the_resolved_txid_and_expiry_and_keeps_transition_times():
    described = {
        "branch": "exp",
        "parent": {"branch": "main", "txid": 42},
        "created_at": NOW.timestamp(),
        "expires_at": NOW.timestamp() + 60,
    }
    s = branch.ready_status(described, 1, now=NOW).model_dump(mode="json", exclude_none=True)
    assert s["phase"] == "Ready" and s["resolvedTxid"] == 42
    assert s["createdTime"] == "2026-11-22T10:00:00Z" and s["expiryTime"] == "2026-11-22T10:01:00Z"
    assert s["conditions"][0]["status"] == "True" and s["conditions"][0]["reason"] == "Forked"
    assert not branch.expired(s, NOW.timestamp() + 59) and branch.expired(s, NOW.timestamp() + 60)
    later = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    again = branch.ready_status(described, 1, s["conditions"], now=later).model_dump(mode="json")
    assert again["conditions"][0]["lastTransitionTime"] == "2026-11-22T10:00:00Z"  # unchanged status
    gone = branch.terminal_status("Expired", "TTLExpired", "deleted", 1, s, now=later).model_dump(mode="json")
    assert gone["phase"] == "Expired" and gone["resolvedTxid"] == 42 and gone["expiryTime"] == s["expiryTime"]
    assert (
        gone["conditions"][0]["status"] == "False"
        and gone["conditions"][0]["lastTransitionTime"] == "2026-11-22T10:05:00Z"
    )
    assert not branch.expired({"phase": "Ready"}, time.time())  # no TTL: never expires
    assert branch.find([{"branch": "a"}, {"branch": "b"}], "b") == {"branch": "b"} and branch.find([], "b") is None


def test_a_node_pod_counts_as_gone_only_when_deleted_or_failed():
    running = {"metadata": {"name": "n"}, "status": {"phase": "Running"}}
    terminating = {
        "metadata": {"name": "n", "deletionTimestamp": "2026-11-22T10:00:00Z"},
        "status": {"phase": "Running"},
    }
    assert failover.pod_is_gone("MODIFIED", running) is None
    # Graceful deletion in progress: the node drains and revokes by itself; do not fence it early.
    assert failover.pod_is_gone("MODIFIED", terminating) is None
    assert failover.pod_is_gone("DELETED", terminating) == "pod deleted"
    evicted = {"metadata": {"name": "n"}, "status": {"phase": "Failed", "reason": "Evicted"}}
    assert failover.pod_is_gone(None, evicted) == "pod failed (Evicted)"


def test_node_load_is_read_from_the_prometheus_text():
    text = (
        "# HELP memoturn_hot_databases Open database handles\n# TYPE memoturn_hot_databases gauge\n"
        "memoturn_hot_databases 12.0\n# TYPE memoturn_warm_databases gauge\nmemoturn_warm_databases 30.0\n"
        "# TYPE memoturn_unshipped_txids gauge\nmemoturn_unshipped_txids 3.0\n"
    )
    assert dataplane.parse_load("p", text) == dataplane.NodeLoad("p", 12, 30)
    assert dataplane.parse_load("p", "") == dataplane.NodeLoad("p", 0, 0)
    assert dataplane.scrape("p", "127.0.0.1", 1) is None  # nothing listens: left out, no exception


def test_revoking_a_dead_nodes_lease_frees_its_branches_at_once(etcd):
    from memoturn.cluster.etcd_leases import EtcdLeaseTable
    from memoturn.errors import NotOwner

    prefix = f"/op-{time.monotonic_ns()}"
    dead = EtcdLeaseTable(etcd.endpoint, "node-a", ttl=30, prefix=prefix).start()
    other = EtcdLeaseTable(etcd.endpoint, "node-b", ttl=30, prefix=prefix).start()
    try:
        dead.acquire("db1/main", "node-a", at_least=0)
        assert other.owner("db1/main")[0] == "node-a"
        with pytest.raises(NotOwner):
            other.acquire("db1/main", "node-b", at_least=0)
        revoked = asyncio.run(failover.revoke_node([etcd.endpoint], prefix, "node-a"))
        assert revoked == [dead.lease_id]
        assert other.owner("db1/main") is None and "node-a" not in other.nodes()
        other.acquire("db1/main", "node-b", at_least=0)  # long before the 30 s TTL
        assert other.owner("db1/main")[0] == "node-b"
        assert asyncio.run(failover.revoke_node([etcd.endpoint], prefix, "node-a")) == []  # nothing left
    finally:
        dead._closed = True
        dead.etcd.close()
        other.close()


def test_an_unreachable_api_server_postpones_the_reconcile_instead_of_failing_it():
    from kubernetes import client
    from memoturn_operator.kube import Kube, Retry
    from support.nodes import free_port

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configuration.retries = 0
    kube = Kube(client.ApiClient(configuration))
    with pytest.raises(Retry, match="unreachable"):
        kube.tenant("memoturn.io", "v1alpha1", "ns", "acme")
    with pytest.raises(Retry, match="unreachable"):
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "ns"}})
