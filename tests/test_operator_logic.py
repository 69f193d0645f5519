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


def _answers(*pairs: tuple[str, bool | None, str]) -> list[dataplane.NodeReadiness]:
    return [dataplane.NodeReadiness(pod, ready, detail) for pod, ready, detail in pairs]


def test_dependency_conditions_name_the_failing_nodes_and_their_causes():
    from memoturn_operator.status import LEASE, STORE, dependencies

    wrong_key = "object store unusable: InvalidAccessKeyId: The Access Key Id you provided does not exist"
    deps = dependencies(_answers(("n-1", True, "ok"), ("n-2", False, wrong_key)))
    assert deps[STORE].status == "False" and deps[STORE].reason == "ObjectStoreUnusable"
    assert "n-2: " + wrong_key in deps[STORE].message and "1/2 nodes" in deps[STORE].message
    assert deps[LEASE].status == "True"  # the node checks its lease first: it holds one
    deps = dependencies(_answers(("n-1", False, "writer lease not held")))
    assert deps[LEASE].status == "False" and deps[LEASE].reason == "LeaseNotHeld"
    assert deps[STORE].status == "Unknown"  # not reached by the node's check
    deps = dependencies(_answers(("n-1", False, "object store unavailable"), ("n-2", None, "no answer (ConnectError)")))
    assert deps[STORE].status == "False" and "n-2" not in deps[STORE].message
    assert dependencies(_answers(("n-1", None, "no answer (ConnectError)")))[STORE].reason == "NodesNotAnswering"
    assert dependencies([])[LEASE].reason == "NoNodes"
    assert (
        len(
            dependencies(_answers(*[(f"n-{i}", False, "object store unusable: " + "x" * 300) for i in range(9)]))[
                STORE
            ].message
        )
        <= 1000
    )
    assert dataplane.probe("p", "127.0.0.1", 1).ready is None  # nothing listens: no answer, no exception


def _deployment(replicas: int, available: int) -> dict:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "availableReplicas": available, "updatedReplicas": replicas},
    }


def test_kstatus_conditions_stall_on_an_unreachable_store_and_keep_their_transition_times():
    from memoturn_operator.status import tenant_status

    wrong = _answers(("n-1", False, "object store unusable: InvalidAccessKeyId"))
    s = tenant_status(3, _deployment(1, 0), _deployment(1, 1), nodes=wrong, now=NOW)
    c = {x.type: x for x in s.conditions}
    assert s.phase == "Degraded" and c["Ready"].status == "False" and c["Ready"].reason == "ObjectStoreUnreachable"
    assert "InvalidAccessKeyId" in c["Ready"].message and "InvalidAccessKeyId" in c["ObjectStoreReachable"].message
    assert c["Stalled"].status == "True" and c["Reconciling"].status == "False"  # kstatus: Failed, not InProgress
    assert all(x.observedGeneration == 3 and x.lastTransitionTime == "2026-11-22T10:00:00Z" for x in s.conditions)
    later = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    previous = [x.model_dump() for x in s.conditions]
    again = tenant_status(3, _deployment(1, 0), _deployment(1, 1), previous, nodes=wrong, now=later)
    assert again == s  # nothing moved: the same status, nothing to write
    fixed = tenant_status(
        3, _deployment(1, 1), _deployment(1, 1), previous, nodes=_answers(("n-1", True, "ok")), now=later
    )
    c = {x.type: x for x in fixed.conditions}
    assert fixed.phase == "Ready" and c["Ready"].lastTransitionTime == "2026-11-22T10:05:00Z"
    assert c["ObjectStoreReachable"].status == "True" and c["Stalled"].status == "False"
    assert c["LeaseStoreReachable"].lastTransitionTime == "2026-11-22T10:00:00Z"  # True before and after
    # Between the failure and the fix, a node pod being replaced (no answer) keeps the failure.
    replaced = tenant_status(3, _deployment(1, 0), _deployment(1, 1), previous, nodes=[], now=later)
    assert {x.type: x.status for x in replaced.conditions}["ObjectStoreReachable"] == "False"
    # A refresh without probing (a Deployment moved) keeps the dependency verdicts as they were.
    kept = tenant_status(3, _deployment(1, 1), _deployment(1, 1), [x.model_dump() for x in fixed.conditions], now=later)
    assert {x.type: x.status for x in kept.conditions}["ObjectStoreReachable"] == "True"


def test_changed_conditions_become_events_with_specific_reasons_and_types():
    from memoturn_operator import events
    from memoturn_operator.status import tenant_status

    ok = tenant_status(1, _deployment(1, 1), _deployment(1, 1), nodes=_answers(("n-1", True, "ok")), now=NOW)
    wrong = _answers(("n-1", False, "object store unusable: InvalidAccessKeyId"))
    bad = tenant_status(1, _deployment(1, 0), _deployment(1, 1), nodes=wrong, now=NOW)
    dump = lambda s: [c.model_dump() for c in s.conditions]  # noqa: E731
    went_bad = events.transitions(dump(ok), dump(bad))
    assert [(e.type, e.reason) for e in went_bad] == [("Warning", "StoreUnreachable"), ("Warning", "Stalled")]
    assert "InvalidAccessKeyId" in went_bad[0].message
    came_back = events.transitions(dump(bad), dump(ok))
    assert [(e.type, e.reason) for e in came_back] == [("Normal", "StoreReachable"), ("Normal", "Ready")]
    assert events.transitions(dump(ok), dump(ok)) == []
    first = events.transitions(None, dump(ok))  # a new tenant: Ready once, no "reachable again"
    assert [e.reason for e in first] == ["Ready"]
    made = [
        events.created(["Deployment/a"]),
        events.scaled(1, 2, [7], 6),
        events.failover_assisted("n-1", "pod deleted", [0x1F], 12.3),
        events.branch_forked("acme--alice", "exp", 42, adopted=False),
        events.branch_expired("acme--alice", "burner", 3),
    ]
    assert [(e.type, e.reason) for e in made] == [
        ("Normal", "Created"),
        ("Normal", "Scaled"),
        ("Normal", "FailoverAssisted"),
        ("Normal", "BranchForked"),
        ("Normal", "BranchExpired"),
    ]
    assert "1f" in made[2].message and "1 -> 2" in made[1].message
    assert events.retrying("resync", "API server away").type == "Warning"
