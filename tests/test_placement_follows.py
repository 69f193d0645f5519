"""The gateway's placement cache keeps following etcd through an etcd restart and through a
failover between members: a cache that silently stopped would route to dead owners forever.

Real etcd processes: a single server restarted (same data, same port), and the secured
three-member cluster with the member the client talks to stopped.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from memoturn.cluster.etcd_client import EtcdClient, EtcdSecurity
from memoturn.cluster.placement import Placement
from memoturn.errors import Unavailable
from support.etcd import ETCD_PASSWORD, ETCD_USER, EtcdCluster, EtcdServer


def _wait_owner(placement: Placement, key: str, expected: str | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if placement.owner(key) == expected:
            return
        time.sleep(0.1)
    pytest.fail(f"placement still says {placement.owner(key)!r} for {key}, etcd says {expected!r}")


def _put(etcd: EtcdClient, key: str, value: str | None) -> None:
    """Write (or delete) through a client other than the placement's, retrying while etcd comes back."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if value is None:
                etcd.call(lambda c: c.delete(key.encode()))
            else:
                etcd.call(lambda c: c.put(key.encode(), value.encode()))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_placement_follows_owner_changes_across_an_etcd_restart():
    prefix = f"/follow-{os.urandom(3).hex()}"
    with EtcdServer() as server:
        watched = EtcdClient(server.endpoint, security=EtcdSecurity())
        writer = EtcdClient(server.endpoint, security=EtcdSecurity())
        placement = Placement(watched, prefix).start()
        try:
            _put(writer, f"{prefix}/owners/db/main", "n1")
            _wait_owner(placement, "db/main", "n1")
            server.stop()
            time.sleep(2)  # long enough for the watch stream to break and the client to retry
            server.start()
            # The owner moves while the cache's stream is being re-established, and again after.
            _put(writer, f"{prefix}/owners/db/main", "n2")
            _wait_owner(placement, "db/main", "n2")
            _put(writer, f"{prefix}/owners/db/main", None)
            _wait_owner(placement, "db/main", None)
            _put(writer, f"{prefix}/owners/other/main", "n3")
            _wait_owner(placement, "other/main", "n3")
        finally:
            placement.close()
            watched.close()
            writer.close()


def test_placement_follows_after_the_member_it_watched_through_stops():
    prefix = f"/follow-{os.urandom(3).hex()}"
    with EtcdCluster(3) as cluster:
        c = cluster.certs
        security = EtcdSecurity(
            ca_file=c.ca, cert_file=c.client_cert, key_file=c.client_key, username=ETCD_USER, password=ETCD_PASSWORD
        )
        watched = EtcdClient(cluster.endpoints, security=security)
        # The writer talks to another member, so it is unaffected by the stop.
        others = ",".join(f"https://{m.endpoint}" for m in cluster.members[1:])
        writer = EtcdClient(others, security=security)
        placement = Placement(watched, prefix).start()
        try:
            _put(writer, f"{prefix}/owners/db/main", "n1")
            _wait_owner(placement, "db/main", "n1")
            assert watched.client.index == 0
            cluster.stop(0)  # the member the placement's client (and its watch) talks to
            _put(writer, f"{prefix}/owners/db/main", "n2")
            _wait_owner(placement, "db/main", "n2")
            assert watched.client.index != 0, "the client never moved off the stopped member"
            _put(writer, f"{prefix}/owners/db/main", "n3")
            _wait_owner(placement, "db/main", "n3")
        finally:
            placement.close()
            watched.close()
            writer.close()


def test_placement_follows_after_etcd_hangs_and_calls_time_out():
    """A hung etcd (SIGSTOP): calls on the placement's client time out, each timeout cancelling
    a failover half-way through closing the connection the watch streams on."""
    prefix = f"/follow-{os.urandom(3).hex()}"
    with EtcdServer() as server:
        watched = EtcdClient(server.endpoint, timeout=1.0, security=EtcdSecurity())
        writer = EtcdClient(server.endpoint, security=EtcdSecurity())
        placement = Placement(watched, prefix).start()
        try:
            _put(writer, f"{prefix}/owners/db/main", "n1")
            _wait_owner(placement, "db/main", "n1")
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                for _ in range(5):
                    with pytest.raises(Unavailable):
                        watched.call(lambda c: c.get(b"/any"), timeout=0.5)
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            _put(writer, f"{prefix}/owners/db/main", "n2")
            _wait_owner(placement, "db/main", "n2")
        finally:
            placement.close()
            watched.close()
            writer.close()
