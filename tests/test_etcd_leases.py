"""etcd leases against a real etcd: exclusive ownership, increasing epochs, self-fencing."""

from __future__ import annotations

import os
import signal
import time

import pytest
from memoturn.cluster.etcd_leases import EtcdLeaseTable
from memoturn.errors import NotOwner, Unavailable
from support.etcd import EtcdServer


def _table(etcd, node_id, ttl=3, prefix="/t1"):
    return EtcdLeaseTable(etcd.endpoint, node_id, url=f"http://{node_id}", ttl=ttl, prefix=prefix).start()


def test_one_owner_per_branch_and_epochs_only_grow(etcd):
    a, b = _table(etcd, "a"), _table(etcd, "b")
    try:
        assert set(a.nodes()) == {"a", "b"}
        e1 = a.acquire("db/main", "a", at_least=1)
        with pytest.raises(NotOwner, match="owned by node a"):
            b.acquire("db/main", "b", at_least=1)
        assert a.owner("db/main") == ("a", e1)
        e2 = a.acquire("db/main", "a", at_least=e1 + 1)  # re-acquiring gives a new epoch
        assert e2 > e1
        a.release("db/main", "a")
        e3 = b.acquire("db/main", "b", at_least=e2 + 1)
        assert e3 > e2 and b.owner("db/main") == ("b", e3)
        with pytest.raises(Unavailable, match="below the manifest epoch"):
            b.acquire("db/other", "b", at_least=10**12)
    finally:
        a.close()
        b.close()


def test_revoking_a_lease_frees_every_branch_of_the_node_at_once(etcd):
    a, b = _table(etcd, "a", prefix="/t2"), _table(etcd, "b", prefix="/t2")
    try:
        for i in range(50):
            a.acquire(f"db{i}/main", "a", at_least=1)
        a.revoke()
        assert "a" not in b.nodes()
        assert all(b.owner(f"db{i}/main") is None for i in range(50))
    finally:
        a.close()
        b.close()


def test_self_fencing_when_etcd_is_away_and_recovery_after(etcd):
    a = _table(etcd, "a", ttl=3, prefix="/t3")
    try:
        assert a.healthy()
        etcd.stop()
        try:
            deadline = time.monotonic() + 10
            while a.healthy() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not a.healthy(), "must stop accepting writes before the lease can expire"
            with pytest.raises(Unavailable):
                a.acquire("db/main", "a", at_least=1)
        finally:
            etcd.start()
        deadline = time.monotonic() + 20
        while not a.healthy() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert a.healthy(), "recovers without operator action once etcd is back"
        assert a.acquire("db/main", "a", at_least=1) > 0
    finally:
        a.close()


def test_the_keepalive_survives_a_hung_etcd():
    """etcd frozen (SIGSTOP) long enough for renewals to time out while their streams are torn
    down: the table fences itself, then renews again once etcd thaws (it used to stop renewing
    for good, leaving the node 'writer lease not held' until restarted)."""
    with EtcdServer() as server:
        a = EtcdLeaseTable(server.endpoint, "a", url="http://a", ttl=3, prefix="/hung").start()
        try:
            assert a.healthy() and server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 10
                while a.healthy() and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert not a.healthy(), "must stop accepting writes before the lease can expire"
                time.sleep(3)  # several renewals fail by timeout
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            deadline = time.monotonic() + 30
            while not a.healthy() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert a.healthy(), "renews again once etcd answers"
            assert a.acquire("db/main", "a", at_least=1) > 0
        finally:
            a.close()
