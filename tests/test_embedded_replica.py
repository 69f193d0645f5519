"""Embedded replicas (memoturn.replica) against real memoturnd processes, and through a real gateway.

Each bullet of the feature: two "devices" (directories) converge after writes from either;
a replica whose segments were merged and collected meanwhile recovers through a snapshot; a
corrupt or forged segment is refused and the local state stays; a token of another namespace
gets nothing; background sync; the offline mode keeps answering and says how stale it is.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time

import httpx
import pytest
from memoturn.client import Memoturn, ProblemError
from memoturn.errors import MemoturnError
from memoturn.replica import EmbeddedReplica, ReplicaCorrupt, open_replica
from memoturn.storage.replica_feed import decode_feed, encode_feed
from memoturn.storage.segment import decode_segment, encode_segment
from support.cluster import Cluster
from support.nodes import Memoturnd

TOKENS = {"MEMOTURN_ADMIN_TOKEN": "admin-secret", "MEMOTURN_TOKENS": "acme:tok-acme,rival:tok-rival"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    data = tmp_path_factory.mktemp("replica")
    proc = Memoturnd(str(data), f"file://{data}/store", env=TOKENS)
    proc.wait_ready()
    proc.store_dir = str(data / "store")
    yield proc
    proc.close()


def _poll(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _kv(replica: EmbeddedReplica) -> list[list]:
    return replica.query("SELECT key, value FROM __memoturn_kv ORDER BY key").data["rows"]


def _memories(replica: EmbeddedReplica) -> list[tuple[str, bool]]:
    return [(m["content"], m["current"]) for m in replica.list_memories(include_superseded=True).data["memories"]]


def test_two_devices_converge_after_writes_from_either(daemon, tmp_path):
    with Memoturn(daemon.url, token="tok-acme") as mt:
        laptop = open_replica(mt, "acme", "conv", tmp_path / "laptop" / "conv.db")
        phone = open_replica(mt, "acme", "conv", tmp_path / "phone" / "conv.db")
        try:
            # A write through one device is readable there at once (read-your-writes), locally.
            stored = laptop.add("Alice prefers green tea", type="preference", subject="drink")
            assert laptop.txid >= stored.txid
            hits = laptop.recall("what does Alice drink?")
            assert hits.served_by == "embedded-replica" and hits.txid >= stored.txid
            assert [h["memory"]["content"] for h in hits["results"]] == ["Alice prefers green tea"]
            put = phone.kv_put("settings", {"theme": "dark"})
            assert phone.kv_get("settings")["value"] == {"theme": "dark"} and phone.txid >= put.txid
            phone.add("Alice now drinks black coffee", type="preference", subject="drink")
            doc = mt.http.post(
                "/v1/databases/acme--conv/collections/notes/documents", json={"id": "n1", "body": {"text": "hi"}}
            )
            assert doc.status_code == 201, doc.text
            laptop.wait_for(int(doc.headers["Memoturn-Txid"]))
            laptop.kv_delete("nothing-here")

            # After a sync, both devices hold the same txid and the same data, which is the owner's.
            laptop.sync()
            phone.sync()
            assert laptop.txid == phone.txid == mt.profile("acme", "conv").stats().txid
            assert _kv(laptop) == _kv(phone) == [["settings", '{"theme":"dark"}']]
            assert _memories(laptop) == _memories(phone)
            assert ("Alice now drinks black coffee", True) in _memories(laptop)
            assert phone.document("notes", "n1")["body"] == {"text": "hi"}
            assert phone.query_documents("notes", filter={"text": "hi"})["documents"][0]["id"] == "n1"
            local = laptop.recall("what does Alice drink now?")
            remote = mt.profile("acme", "conv").recall("what does Alice drink now?")
            assert [h["memory"]["id"] for h in local["results"]] == [h["memory"]["id"] for h in remote["results"]]
            assert laptop.stats()["current"] == remote_current(mt) == 1

            # Local SQL is read-only; reads say their txid and how fresh they are.
            with pytest.raises(ProblemError) as exc:
                laptop.query("INSERT INTO __memoturn_kv VALUES ('x', '1', NULL, 0)")
            assert exc.value.status == 400 and exc.value.type == "sql-error"
            with pytest.raises(ProblemError) as exc:
                laptop.kv_get("absent")
            assert exc.value.status == 404 and exc.value.type == "key-not-found"
            read = laptop.kv_get("settings")
            assert read.txid == laptop.txid and read.staleness.behind_txids == 0 and not read.staleness.offline
        finally:
            laptop.close()
            phone.close()

        # The file survives a restart: reopened, it continues from its txid with segments only.
        again = open_replica(mt, "acme", "conv", tmp_path / "laptop" / "conv.db", offline=True)
        try:
            assert again.txid == phone.txid and _kv(again) == [["settings", '{"theme":"dark"}']]
            with pytest.raises(MemoturnError) as in_use:
                open_replica(mt, "acme", "conv", tmp_path / "laptop" / "conv.db")
            assert in_use.value.type == "replica-in-use"
            mt.profile("acme", "conv").add("Bob plays chess", type="fact")
            report = again.go_online()
            assert report.snapshot is False and report.applied_txns >= 1
            assert ("Bob plays chess", True) in _memories(again)
        finally:
            again.close()


def remote_current(mt: Memoturn) -> int:
    return int(mt.profile("acme", "conv").stats()["current"])


def test_missed_segments_merged_and_collected_recover_through_a_snapshot(daemon, tmp_path):
    db = "acme--gap"
    with Memoturn(daemon.url, token="tok-acme") as mt:
        replica = open_replica(mt, "acme", "gap", tmp_path / "device" / "gap.db")
        try:
            replica.add("a profile is created by its first memory")
            replica.kv_put("k0", 0)
            behind = replica.txid
            assert replica.sync().snapshot is False  # up to date: nothing to apply, no snapshot
            mt.database(db).set_policy(snapshot_every_txids=3, keep_snapshots=1, merge_segments_over=2)
            for i in range(1, 25):
                mt.database(db).kv_put(f"k{i}", i, durability="durable")

            def gone():
                view = mt.http.get("/v1/namespaces/acme/profiles/gap/replica/manifest").json()
                first = min((s["first_txid"] for s in view["segments"]), default=view["head_txid"] + 1)
                return view["snapshot"] and view["snapshot"]["txid"] > behind + 1 and first > behind + 1

            _poll(gone, "a snapshot to replace the segments after the replica's txid")
            mt.database(db).gc(grace_seconds=0)
            r = mt.http.get("/v1/namespaces/acme/profiles/gap/replica/segments", params={"after": behind})
            assert r.status_code == 409 and r.json()["type"] == "segments-gone"

            assert replica.txid == behind  # it missed them all
            report = replica.sync()
            assert report.snapshot is True
            assert replica.txid == mt.profile("acme", "gap").stats().txid
            assert _kv(replica) == [[f"k{i}", str(i)] for i in sorted(range(25), key=lambda i: f"k{i}")]
        finally:
            replica.close()


def test_a_profile_deleted_and_created_again_is_another_history(daemon, tmp_path):
    with Memoturn(daemon.url, token="tok-acme") as mt:
        with open_replica(mt, "acme", "reborn", tmp_path / "device" / "reborn.db") as replica:
            replica.add("the first life")
            for i in range(3):
                replica.kv_put(f"old-{i}", i)
            assert mt.http.delete("/v1/namespaces/acme/profiles/reborn").status_code == 204
            mt.profile("acme", "reborn").add("the second life")
            for i in range(6):  # past the replica's txid: the same txids, another history
                mt.database("acme--reborn").kv_put(f"new-{i}", i)
            assert mt.profile("acme", "reborn").stats().txid > replica.txid
            report = replica.sync()
            assert report.snapshot is True
            assert [k for k, _ in _kv(replica)] == [f"new-{i}" for i in range(6)]
            assert _memories(replica) == [("the second life", True)]


def test_a_replica_far_behind_takes_the_snapshot_when_it_moves_fewer_bytes(daemon, tmp_path):
    db = "acme--far"
    with Memoturn(daemon.url, token="tok-acme") as mt:
        mt.profile("acme", "far").add("a profile is created by its first memory")
        # Every segment is kept (many snapshots retained), so the segments path stays possible.
        mt.database(db).set_policy(snapshot_every_txids=5, keep_snapshots=1000)
        default = open_replica(mt, "acme", "far", tmp_path / "a" / "far.db")
        segments_only = EmbeddedReplica(mt, "acme", "far", tmp_path / "b" / "far.db", snapshot_if_smaller=False)
        try:
            for i in range(40):  # one key rewritten: every segment repeats the same pages
                mt.database(db).kv_put("counter", i, durability="durable")
            _poll(
                lambda: (
                    (mt.http.get("/v1/namespaces/acme/profiles/far/replica/manifest").json()["snapshot"] or {}).get(
                        "txid", 0
                    )
                    > default.txid + 5
                ),
                "a snapshot past the replicas' txid",
            )
            assert default.sync().snapshot is True
            report = segments_only.sync()
            assert report.snapshot is False and report.applied_txns >= 40
            assert default.txid == segments_only.txid
            assert default.kv_get("counter")["value"] == segments_only.kv_get("counter")["value"] == 39
        finally:
            default.close()
            segments_only.close()


def _segment_files(store_dir: str, db: str) -> set[str]:
    return set(glob.glob(os.path.join(store_dir, "**", db, "main", "seg", "*.seg"), recursive=True))


def test_a_corrupt_segment_is_refused_and_the_local_state_kept(daemon, tmp_path):
    db = "acme--corrupt"
    with Memoturn(daemon.url, token="tok-acme") as mt:
        replica = open_replica(mt, "acme", "corrupt", tmp_path / "device" / "corrupt.db")
        try:
            replica.add("a profile is created by its first memory")
            replica.kv_put("kept", 1)
            before = replica.txid
            old = _segment_files(daemon.store_dir, db)
            assert old, "the file store keeps segments as files"
            mt.database(db).kv_put("new", 2, durability="durable")
            (path,) = _segment_files(daemon.store_dir, db) - old
            original = open(path, "rb").read()
            damaged = bytearray(original)
            damaged[len(damaged) // 2] ^= 0xFF
            with open(path, "wb") as f:
                f.write(bytes(damaged))
            with pytest.raises(ReplicaCorrupt, match="checksum"):
                replica.sync()
            assert replica.txid == before and replica.kv_get("kept")["value"] == 1
            assert "checksum" in replica.staleness.last_error
            with pytest.raises(ProblemError):
                replica.kv_get("new")
            with open(path, "wb") as f:
                f.write(original)
            replica.sync()
            assert replica.kv_get("new")["value"] == 2
        finally:
            replica.close()


class _Forging(httpx.BaseTransport):
    """Fault injection between the replica and a real node: rewrites the segments it serves."""

    def __init__(self, forge) -> None:
        self.inner = httpx.HTTPTransport()
        self.forge = forge

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/replica/segments") or response.status_code != 200:
            return response
        feed = decode_feed(response.read())
        if feed.entries:
            self.forge(feed)
        return httpx.Response(200, headers=response.headers, content=encode_feed(feed))


def _resealed(feed, i: int, **changes) -> None:
    """Replace segment ``i`` by a validly sealed one with ``changes``, and fix the checksum the header lists."""
    seg = decode_segment(feed.blobs[i])
    for name, value in changes.items():
        setattr(seg, name, value)
    feed.blobs[i] = encode_segment(seg)
    feed.entries[i].size = len(feed.blobs[i])
    feed.entries[i].sha256 = hashlib.sha256(feed.blobs[i]).hexdigest()


def _shift_txids(feed) -> None:
    seg = decode_segment(feed.blobs[0])
    for txn in seg.txns:
        txn.txid += 1  # skips a txid: a gap in the chain
    feed.blobs[0] = encode_segment(seg)
    feed.entries[0].first_txid, feed.entries[0].last_txid = seg.first_txid, seg.last_txid
    feed.entries[0].apply_to += 1
    feed.head_txid += 1
    feed.entries[0].sha256 = hashlib.sha256(feed.blobs[0]).hexdigest()
    feed.entries[0].size = len(feed.blobs[0])


def _break_seal(feed) -> None:
    """Damage a page byte and list the damaged bytes' checksum in the header: only the seal can tell."""
    blob = bytearray(feed.blobs[0])
    blob[-100] ^= 0xFF
    feed.blobs[0] = bytes(blob)
    feed.entries[0].sha256 = hashlib.sha256(feed.blobs[0]).hexdigest()


@pytest.mark.parametrize(
    ("forge", "refusal"),
    [
        (lambda feed: _resealed(feed, 0, database="acme--someone-else"), "acme--someone-else"),
        (lambda feed: _resealed(feed, 0, branch="other"), "/other: refused"),
        (_shift_txids, "gap"),
        (_break_seal, "checksum mismatch"),
    ],
    ids=["other-database", "other-branch", "txid-gap", "bad-seal"],
)
def test_a_forged_segment_is_refused(daemon, tmp_path, request, forge, refusal):
    profile = f"forged-{request.node.callspec.id}"
    with Memoturn(daemon.url, token="tok-acme") as honest:
        replica = open_replica(honest, "acme", profile, tmp_path / "device" / "forged.db")
        try:
            honest.profile("acme", profile).add("a profile is created by its first memory")
            honest.database(f"acme--{profile}").kv_put("before", 1)
            replica.sync()
            before = replica.txid
            honest.database(f"acme--{profile}").kv_put("after", 2)
            honest.http.close()
            honest.http = httpx.Client(
                base_url=daemon.url, headers={"Authorization": "Bearer tok-acme"}, transport=_Forging(forge)
            )
            with pytest.raises(ReplicaCorrupt, match=refusal):
                replica.sync()
            assert replica.txid == before and replica.kv_get("before")["value"] == 1
            with pytest.raises(ProblemError):
                replica.kv_get("after")
        finally:
            replica.close()


def test_a_token_of_another_namespace_gets_nothing(daemon, tmp_path):
    with Memoturn(daemon.url, token="tok-acme") as mt:
        mt.profile("acme", "secret").add("the launch code is 0000")
    base = "/v1/namespaces/acme/profiles/secret/replica"
    for token, status in (("tok-rival", 403), ("wrong", 401), (None, 401)):
        with Memoturn(daemon.url, token=token, retries=0) as other:
            for route, params in (("/manifest", {}), ("/snapshot", {}), ("/segments", {"after": 0})):
                r = other.http.get(base + route, params=params)
                assert r.status_code == status, (route, r.text)
                assert b"launch" not in r.content
            path = tmp_path / f"{token}" / "secret.db"
            with pytest.raises(ProblemError) as exc:
                open_replica(other, "acme", "secret", path)
            assert exc.value.status == status
            assert not path.exists()
    # The rival's own namespace works, and reaches only its own profile.
    with Memoturn(daemon.url, token="tok-rival") as rival:
        rival.profile("rival", "own").add("rival's memory")
        with open_replica(rival, "rival", "own", tmp_path / "rival" / "own.db") as mine:
            assert mine.stats()["memories"] == 1


def test_background_sync_and_the_offline_mode(tmp_path):
    data = tmp_path / "node"
    proc = Memoturnd(str(data), f"file://{data}/store", env=TOKENS)
    proc.wait_ready()
    try:
        with Memoturn(proc.url, token="tok-acme", retries=1) as mt:
            replica = open_replica(mt, "acme", "bg", tmp_path / "device" / "bg.db", sync_interval=0.1)
            try:
                mt.profile("acme", "bg").add("a profile is created by its first memory")
                written = mt.database("acme--bg").kv_put("k", "v")  # through another path than the replica
                _poll(lambda: replica.txid >= written.txid, "the background sync to apply the write")
                assert replica.kv_get("k")["value"] == "v"
                proc.close()  # the node goes away: the replica keeps answering, and says how stale it is
                _poll(lambda: replica.staleness.offline, "the replica to notice it is offline")
                time.sleep(0.2)
                read = replica.kv_get("k")
                assert read["value"] == "v" and read.txid == written.txid
                stale = read.staleness
                assert stale.offline and stale.owner_txid == written.txid and stale.behind_txids == 0
                assert stale.seconds_since_sync is not None and stale.seconds_since_sync > 0
                assert stale.last_error and "unreachable" in stale.last_error
                with pytest.raises(ProblemError) as exc:
                    replica.sync()
                assert exc.value.type == "unreachable"
                with pytest.raises(ProblemError):
                    replica.kv_put("k", "w")
            finally:
                replica.close()
            # Opened with no node at all, the file answers offline.
            with open_replica(mt, "acme", "bg", tmp_path / "device" / "bg.db", offline=True) as cold:
                assert cold.kv_get("k")["value"] == "v" and cold.staleness.offline
                assert cold.staleness.seconds_since_sync is not None
    finally:
        proc.close()


def test_replicas_through_the_gateway(tmp_path, etcd, minio):
    cluster = Cluster(tmp_path, etcd, minio, nodes=2, env=TOKENS)
    try:
        url = cluster.gateway.url
        with Memoturn(url, token="tok-acme") as mt:
            one = open_replica(mt, "acme", "gw", tmp_path / "one" / "gw.db")
            two = open_replica(mt, "acme", "gw", tmp_path / "two" / "gw.db")
            try:
                one.add("Alice prefers green tea", type="preference")
                two.kv_put("k", 1)
                assert one.sync().txid == two.sync().txid == mt.profile("acme", "gw").stats().txid
                assert _kv(one) == _kv(two) == [["k", "1"]]
                assert two.recall("what does Alice drink?")["results"][0]["memory"]["content"] == (
                    "Alice prefers green tea"
                )
                # A fresh device starts from a snapshot, relayed by the gateway as it is.
                mt.database("acme--gw").set_policy(snapshot_every_txids=1)
                mt.database("acme--gw").kv_put("k", 2, durability="durable")
                mt.database("acme--gw").kv_put("k", 3, durability="durable")
                _poll(
                    lambda: mt.http.get("/v1/namespaces/acme/profiles/gw/replica/manifest").json()["snapshot"],
                    "a snapshot",
                )
                with open_replica(mt, "acme", "gw", tmp_path / "three" / "gw.db") as three:
                    assert three.kv_get("k")["value"] == 3
                    one.sync()
                    assert three.txid == one.txid
            finally:
                one.close()
                two.close()
        with Memoturn(url, token="tok-rival", retries=0) as rival:
            r = rival.http.get("/v1/namespaces/acme/profiles/gw/replica/segments", params={"after": 0})
            assert r.status_code == 403
    finally:
        cluster.close()
