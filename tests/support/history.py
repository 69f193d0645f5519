"""History-checked fault testing, Jepsen's way, for a local Memoturn cluster.

Several :class:`Client` threads write and read through the gateway and record every
operation with its outcome in a :class:`History`; a :class:`Nemesis` meanwhile kills nodes
(``kill -9``, restarted on the same data directory or on an empty one), freezes an owner
(SIGSTOP past the lease TTL, then SIGCONT), restarts etcd and MinIO, and fills a node's
cache filesystem. After everything is healed, :func:`observe` reads the final state and
some points in time of the store (forks at chosen txids), and :func:`check` turns the
history into a list of anomalies:

* ``a-durability``: every acknowledged write (all writes are ``durable``) is readable with
  its value after recovery (keys are unique per write, so nothing supersedes anything);
* ``b-txid-unique``: no txid of a database is reported by two acknowledged writes, and in
  the store a fork at txid ``t`` holds exactly the acknowledged writes with txid <= ``t``
  (so txid ``t`` names the commit that was acknowledged with it, DESIGN 13);
* ``c-monotonic``: per client and database, ``Memoturn-Min-Txid: N`` reads answer a txid
  >= N, observed txids never decrease, a write after an acknowledged write gets a larger
  txid, and a client reads back its own acknowledged writes (DESIGN 7);
* ``d-paused-owner``: a write sent straight to a frozen owner whose branch meanwhile moved
  to another node is never acknowledged (DESIGN 4, 13);
* ``e-not-applied``: a write answered as provably not applied (``503 no-route``, a typed
  refusal without a txid) never becomes visible, and no write runs twice (an SQL insert of
  a key sent once is there once).

:func:`run_history` wires it all together for ``tests/test_history.py`` (short) and
``bench/soak.py`` (``make soak``, long).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import httpx

from support.cluster import Cluster
from support.nodes import Memoturnd

WRITES = ("put", "sql-insert", "probe-put")
# Problem types that say the write did not run (when the answer names no txid): the gateway's
# "no-route" (every attempt refused or never connected) and the nodes' typed refusals that are
# raised before anything commits. Anything else that is not a success is "unknown".
NOT_APPLIED = {
    "no-route",
    "not-owner",
    "fenced",
    "lease-lost",
    "store-unavailable",
    "sql-workers-busy",
    "reserved-table",
    "invalid-request",
    "malformed-json",
    "payload-too-large",
    "invalid-header",
}
# The SQL table of the clients is a rowid table with no PRIMARY KEY/UNIQUE on ``k``: with one, the
# node refuses every INSERT and keyed SELECT with ``403 reserved-table`` (its SQL guard takes the
# automatic index ``sqlite_autoindex_h_1`` for a reserved table). Double execution is caught from
# duplicate rows instead of a constraint error.
KINDS = ("kill", "kill-fresh", "pause", "etcd", "minio", "disk-full")


# -- the history --------------------------------------------------------------------------


@dataclasses.dataclass
class Op:
    id: int
    client: str
    kind: str  # put | get | sql-insert | probe-put
    db: str
    key: str
    value: str | None = None
    start: float = 0.0
    end: float | None = None
    outcome: str = "pending"  # ok | fail | unknown
    status: int | None = None
    problem: str | None = None
    detail: str | None = None
    txid: int | None = None
    min_txid: int | None = None
    found: bool | None = None  # reads: the key was there
    read_value: Any = None
    node: str | None = None  # the node that answered, when known (direct probes)
    tag: str | None = None  # e.g. the nemesis event a probe belongs to

    def as_dict(self, t0: float = 0.0) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        d["start"] = round(self.start - t0, 3)
        if self.end is not None:
            d["end"] = round(self.end - t0, 3)
        return d


class History:
    """Every operation and nemesis event, thread-safe; times are ``time.monotonic()``."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self.ops: list[Op] = []
        self.events: list[dict[str, Any]] = []

    def invoke(self, client: str, kind: str, db: str, key: str, value: str | None = None, **fields: Any) -> Op:
        with self._lock:
            op = Op(len(self.ops), client, kind, db, key, value, start=time.monotonic(), **fields)
            self.ops.append(op)
        return op

    def complete(self, op: Op, response: httpx.Response | None = None, exc: BaseException | None = None) -> Op:
        op.end = time.monotonic()
        if exc is not None:
            op.problem = type(exc).__name__
            op.detail = str(exc)[:200]
            # Never sent (connect failed): it did not run. Anything later: it may have.
            op.outcome = "fail" if op.kind == "get" or isinstance(exc, httpx.ConnectError) else "unknown"
            return op
        assert response is not None
        op.status = response.status_code
        header = response.headers.get("memoturn-txid")
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            pass
        if header is not None and header.isdigit():
            op.txid = int(header)
        elif isinstance(body, dict) and isinstance(body.get("txid"), int) and response.status_code >= 400:
            op.txid = body["txid"]
        if 200 <= response.status_code < 300:
            op.outcome = "ok"
            if op.kind == "get":
                op.found = True
                op.read_value = body.get("value") if isinstance(body, dict) else None
            return op
        if isinstance(body, dict):
            op.problem = body.get("type")
            op.detail = str(body.get("detail", ""))[:300]
        if op.kind == "get":
            if response.status_code == 404 and op.problem == "key-not-found":
                op.outcome, op.found = "ok", False
            else:
                op.outcome = "fail"
        elif op.problem in NOT_APPLIED and op.txid is None:
            op.outcome = "fail"
        else:
            op.outcome = "unknown"
        return op

    def event(self, kind: str, **details: Any) -> dict[str, Any]:
        """A nemesis event; the caller fills in ``end`` (and more) as it goes."""
        with self._lock:
            ev = {"id": len(self.events), "kind": kind, "start": time.monotonic(), **details}
            self.events.append(ev)
        return ev

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter] = defaultdict(Counter)
        for op in list(self.ops):
            out[op.kind][op.outcome] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    def events_json(self) -> list[dict[str, Any]]:
        out = []
        for ev in list(self.events):
            d = dict(ev)
            for k, v in ev.items():
                if k in ("start", "end") or k.endswith("_at"):
                    d[k] = round(v - self.t0, 3) if isinstance(v, float) else v
                elif isinstance(v, float):
                    d[k] = round(v, 3)
            out.append(d)
        return out

    def impact(self) -> dict[int, dict[str, int]]:
        """Per event id: the outcomes of the operations that overlapped it (did the fault bite?)."""
        out: dict[int, Counter] = {ev["id"]: Counter() for ev in self.events}
        for op in list(self.ops):
            for ev in self.events:
                if op.end is not None and op.start <= ev.get("end", ev["start"]) and op.end >= ev["start"]:
                    out[ev["id"]][f"{op.kind} {op.outcome}" + (f" {op.problem}" if op.problem else "")] += 1
        return {i: dict(c.most_common()) for i, c in out.items()}

    def to_json(self) -> dict[str, Any]:
        return {"ops": [op.as_dict(self.t0) for op in list(self.ops)], "events": self.events_json()}


# -- clients ------------------------------------------------------------------------------


class Client:
    """One sequential client: durable KV puts of unique keys and values, ``Memoturn-Min-Txid``
    reads of its own acknowledged keys, and (some) unique SQL inserts."""

    def __init__(
        self,
        name: str,
        url: str,
        dbs: list[str],
        history: History,
        *,
        seed: int,
        read_share: float = 0.3,
        sql_share: float = 0.15,
        timeout: float = 90.0,
    ) -> None:
        self.name, self.dbs, self.history = name, dbs, history
        self.rng = random.Random(seed)
        self.read_share, self.sql_share = read_share, sql_share
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.seq = 0
        self.last_txid: dict[str, int] = {}
        self.acked: dict[str, list[tuple[str, str]]] = {db: [] for db in dbs}

    def _unique(self) -> tuple[str, str]:
        self.seq += 1
        return f"{self.name}-{self.seq}", f"{self.name}:{self.seq}:{self.rng.getrandbits(32):08x}"

    def _seen(self, op: Op) -> None:
        if op.outcome == "ok" and op.txid is not None:
            self.last_txid[op.db] = max(self.last_txid.get(op.db, 0), op.txid)

    def step(self) -> Op:
        db = self.rng.choice(self.dbs)
        r = self.rng.random()
        if r < self.read_share and self.acked[db]:
            key, _ = self.rng.choice(self.acked[db][-20:])
            min_txid = self.last_txid.get(db)
            op = self.history.invoke(self.name, "get", db, key, min_txid=min_txid)
            headers = {"Memoturn-Min-Txid": str(min_txid)} if min_txid is not None else {}
            try:
                resp = self.http.get(f"/v1/databases/{db}/kv/{key}", headers=headers)
            except httpx.HTTPError as exc:
                return self.history.complete(op, exc=exc)
        elif r < self.read_share + self.sql_share:
            key, value = self._unique()
            op = self.history.invoke(self.name, "sql-insert", db, key, value)
            body = {"statements": [{"sql": "INSERT INTO h(k, v) VALUES (?, ?)", "params": [key, value]}]}
            try:
                resp = self.http.post(f"/v1/databases/{db}/sql", json=body, headers={"Memoturn-Durability": "durable"})
            except httpx.HTTPError as exc:
                return self.history.complete(op, exc=exc)
        else:
            key, value = self._unique()
            op = self.history.invoke(self.name, "put", db, key, value)
            try:
                resp = self.http.put(
                    f"/v1/databases/{db}/kv/{key}", json={"value": value}, headers={"Memoturn-Durability": "durable"}
                )
            except httpx.HTTPError as exc:
                return self.history.complete(op, exc=exc)
        self.history.complete(op, resp)
        self._seen(op)
        if op.kind == "put" and op.outcome == "ok":
            self.acked[db].append((op.key, op.value or ""))
        return op

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                op = self.step()
                if op.outcome != "ok":
                    stop.wait(0.05)  # do not spin on an outage
        finally:
            self.http.close()


# -- a small filesystem for one node's cache ----------------------------------------------


class SmallDisk:
    """A tmpfs of its own (``mount -t tmpfs -o size=…``) at ``path``, to fill and free.

    Mounting needs root (CAP_SYS_ADMIN). Where that is not permitted, :meth:`try_mount`
    returns False and says why in :attr:`reason`: the disk-full action is then skipped (and
    recorded as skipped), the rest of the test runs.
    """

    def __init__(self, path: str, size_mb: int = 24) -> None:
        self.path, self.size_mb = path, size_mb
        self.mounted = False
        self.reason = ""
        self.filler = os.path.join(path, "filler.bin")

    def try_mount(self) -> bool:
        os.makedirs(self.path, exist_ok=True)
        try:
            out = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", self.path],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.reason = f"mount not possible: {exc}"
            return False
        if out.returncode != 0:
            self.reason = f"mount not permitted here: {(out.stderr or out.stdout).strip()[:200]}"
            return False
        self.mounted = True
        return True

    def fill(self) -> int:
        """Write zeros until the filesystem is full (ENOSPC); the bytes written."""
        written = 0
        chunk = b"\0" * (256 * 1024)
        with open(self.filler, "ab", buffering=0) as f:
            while True:
                try:
                    n = f.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                if not n:
                    break
                written += n
        return written

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def release(self) -> None:
        try:
            os.unlink(self.filler)
        except FileNotFoundError:
            pass

    def empty(self) -> None:
        """Remove everything on it (a node restarted with an empty cache)."""
        for name in os.listdir(self.path):
            p = os.path.join(self.path, name)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)

    def unmount(self) -> None:
        if not self.mounted:
            return
        if subprocess.run(["umount", self.path], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", self.path], capture_output=True)
        self.mounted = False


# -- the nemesis --------------------------------------------------------------------------


def node_ready(node: Memoturnd) -> bool:
    try:
        return node.proc.poll() is None and node.client.get("/v1/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _ready_detail(node: Memoturnd) -> str:
    """What the node's readiness says (why it is not ready), for the failure message."""
    try:
        return str(node.client.get("/v1/ready", timeout=2).json().get("detail"))
    except (httpx.HTTPError, ValueError):
        return "no answer"


def wait_healthy(cluster: Cluster, timeout: float = 60.0) -> float:
    """Until every node is ready and the gateway sees them all; seconds it took."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        try:
            gw_nodes = cluster.gateway.client.get("/v1/gateway/health", timeout=2).json()["nodes"]
        except (httpx.HTTPError, ValueError, KeyError):
            gw_nodes = -1
        if gw_nodes >= len(cluster.nodes) and all(node_ready(n) for n in cluster.nodes.values()):
            return time.monotonic() - t0
        time.sleep(0.1)
    states = {i: (n.proc.poll(), node_ready(n), _ready_detail(n)) for i, n in cluster.nodes.items()}
    raise TimeoutError(f"cluster not healthy after {timeout}s: {states}")


def restart_node(
    cluster: Cluster, node_id: str, *, fresh: bool = False, disk: SmallDisk | None = None, timeout: float = 60.0
) -> Memoturnd:
    """Kill -9 ``node_id`` (if alive) and start it again with the same id and address, on the
    same data directory or (``fresh``) an emptied one; waits until it is ready."""
    old = cluster.nodes[node_id]
    old.close()  # kill -9 if it is still running
    host = urllib.parse.urlsplit(old.url).hostname or "127.0.0.1"
    data_dir = os.path.dirname(old.log_path)
    if fresh:
        for name in os.listdir(data_dir):
            p = os.path.join(data_dir, name)
            if p == old.log_path:
                continue
            if disk is not None and disk.mounted and os.path.abspath(p) == os.path.abspath(disk.path):
                disk.empty()  # the mount point stays, its content goes
            elif os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
    node = Memoturnd(data_dir, cluster.store_url, host=host, env={**cluster.env, "MEMOTURN_NODE_ID": node_id})
    cluster.nodes[node_id] = node
    node.wait_ready(timeout=timeout)
    return node


class Nemesis:
    """Faults, one at a time, each healed before the next: see :data:`KINDS`."""

    def __init__(
        self,
        cluster: Cluster,
        etcd: Any,
        minio: Any,
        history: History,
        *,
        seed: int,
        ttl: int,
        dbs: list[str],
        disks: dict[str, SmallDisk] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.cluster, self.etcd, self.minio, self.history = cluster, etcd, minio, history
        self.rng = random.Random(seed)
        self.ttl, self.dbs = ttl, dbs
        self.disks = disks or {}
        self.log = log
        self.paused: Memoturnd | None = None
        self.gw = httpx.Client(base_url=cluster.gateway.url, timeout=90)
        self.seq = 0

    # -- actions --------------------------------------------------------------------------

    def kill(self, fresh: bool = False) -> dict[str, Any]:
        node_id = self.rng.choice(sorted(self.cluster.nodes))
        delay = self.rng.uniform(0, self.ttl + 1)  # restart at once (same id), or after a failover
        ev = self.history.event("kill-fresh" if fresh else "kill", node=node_id, restart_after_s=delay)
        self.cluster.nodes[node_id].kill(signal.SIGKILL)
        ev["killed_at"] = time.monotonic()
        time.sleep(delay)
        restart_node(self.cluster, node_id, fresh=fresh, disk=self.disks.get(node_id))
        ev["restarted_at"] = time.monotonic()
        return ev

    def pause(self) -> dict[str, Any]:
        """Freeze the owner of a database past the lease TTL; meanwhile send it writes directly
        (they wait in its socket), and move the database: once the lease has expired and the
        gateway no longer routes to the frozen node, a write through the gateway lands on
        another node. The frozen node must acknowledge none of the direct writes."""
        owners = {db: self.cluster.gateway.owner(db) for db in self.dbs}
        candidates = [(db, o) for db, o in owners.items() if o in self.cluster.nodes]
        db, node_id = self.rng.choice(candidates) if candidates else (self.rng.choice(self.dbs), None)
        node_id = node_id or self.rng.choice(sorted(self.cluster.nodes))
        node = self.cluster.nodes[node_id]
        hold = self.ttl + self.rng.uniform(2, 4)
        ev = self.history.event("pause", node=node_id, db=db, hold_s=hold, moved=False)
        tag = f"pause#{ev['id']}"
        node.proc.send_signal(signal.SIGSTOP)
        self.paused = node
        paused_at = ev["paused_at"] = time.monotonic()
        probes = [threading.Thread(target=self._probe, args=(node, node_id, db, tag), daemon=True) for _ in range(3)]
        for t in probes:
            t.start()
        try:
            # Held at least ``hold``, longer (up to TTL + 15 s) until the database has moved.
            while time.monotonic() < paused_at + hold or (
                not ev["moved"] and time.monotonic() < paused_at + self.ttl + 15
            ):
                time.sleep(0.2)
                if ev["moved"] or time.monotonic() < paused_at + self.ttl:
                    continue
                # Not before the gateway stopped routing to the frozen node (a request sent to
                # it would wait for its 60 s timeout).
                if self.cluster.gateway.owner(db) == node_id or node_id in self._live():
                    continue
                op = self._gateway_put(db, tag, timeout=15)
                owner = self.cluster.gateway.owner(db)
                if op.outcome == "ok" and owner is not None and owner != node_id:
                    ev["moved"], ev["heir"], ev["moved_at"] = True, owner, time.monotonic()
        finally:
            node.proc.send_signal(signal.SIGCONT)
            self.paused = None
        ev["resumed_at"] = time.monotonic()
        for t in probes:
            t.join(timeout=90)
        for _ in range(3):  # after it woke up: the branch is the heir's now
            self._probe(node, node_id, db, tag + "/after")
        return ev

    def _live(self) -> set[str]:
        try:
            return {n["id"] for n in self.gw.get("/v1/cluster/nodes", timeout=5).json()["nodes"]}
        except (httpx.HTTPError, ValueError, KeyError):
            return set(self.cluster.nodes)

    def _probe(self, node: Memoturnd, node_id: str, db: str, tag: str) -> None:
        self.seq += 1
        key = f"probe-{node_id}-{self.seq}-{self.rng.getrandbits(24):06x}"
        op = self.history.invoke("probe", "probe-put", db, key, key, node=node_id, tag=tag)
        try:
            resp = httpx.put(
                f"{node.url}/v1/databases/{db}/kv/{key}",
                json={"value": key},
                headers={"Memoturn-Durability": "durable"},
                timeout=90,
            )
        except httpx.HTTPError as exc:
            self.history.complete(op, exc=exc)
            return
        self.history.complete(op, resp)

    def _gateway_put(self, db: str, tag: str, timeout: float = 90) -> Op:
        self.seq += 1
        key = f"nemesis-{self.seq}-{self.rng.getrandbits(24):06x}"
        op = self.history.invoke("nemesis", "put", db, key, key, tag=tag)
        try:
            resp = self.gw.put(
                f"/v1/databases/{db}/kv/{key}",
                json={"value": key},
                headers={"Memoturn-Durability": "durable"},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            return self.history.complete(op, exc=exc)
        return self.history.complete(op, resp)

    def restart_etcd(self) -> dict[str, Any]:
        down = self.rng.uniform(0.5, self.ttl + 2)  # within the self-fencing margin, or past the TTL
        hard = self.rng.random() < 0.5
        ev = self.history.event("etcd", down_s=down, signal="KILL" if hard else "TERM")
        if hard and self.etcd.proc is not None:
            self.etcd.proc.kill()
            self.etcd.proc.wait()
            self.etcd.proc = None
        else:
            self.etcd.stop()
        ev["stopped_at"] = time.monotonic()
        time.sleep(down)
        self.etcd.start()
        ev["started_at"] = time.monotonic()
        return ev

    def restart_minio(self) -> dict[str, Any]:
        down = self.rng.uniform(0.5, 4.0)
        ev = self.history.event("minio", down_s=down)
        self.minio.stop()  # kill -9
        ev["stopped_at"] = time.monotonic()
        time.sleep(down)
        self.minio.start()
        ev["started_at"] = time.monotonic()
        return ev

    def fill_disk(self) -> dict[str, Any]:
        """Fill the cache filesystem of a node that owns a database (writes to it then need
        space its cache does not have), hold, free it."""
        mounted = {i: d for i, d in self.disks.items() if d.mounted}
        if not mounted:
            reason = next((d.reason for d in self.disks.values() if d.reason), "no small filesystem configured")
            return self.history.event("disk-full", skipped=reason, end=time.monotonic())
        owners = [o for o in (self.cluster.gateway.owner(db) for db in self.dbs) if o in mounted]
        node_id = self.rng.choice(owners or sorted(mounted))
        disk = mounted[node_id]
        hold = self.rng.uniform(3, 6)
        ev = self.history.event(
            "disk-full",
            node=node_id,
            owns=sorted(db for db in self.dbs if self.cluster.gateway.owner(db) == node_id),
            hold_s=hold,
        )
        try:
            ev["filled_bytes"] = disk.fill()
            ev["free_bytes_when_full"] = disk.free_bytes()
            ev["full_at"] = time.monotonic()
            time.sleep(hold)
        finally:
            disk.release()
        ev["freed_at"] = time.monotonic()
        return ev

    def do(self, kind: str) -> dict[str, Any]:
        action = {
            "kill": self.kill,
            "kill-fresh": lambda: self.kill(fresh=True),
            "pause": self.pause,
            "etcd": self.restart_etcd,
            "minio": self.restart_minio,
            "disk-full": self.fill_disk,
        }[kind]
        ev = action()
        if not ev.get("skipped"):
            ev["recovered_s"] = wait_healthy(self.cluster, timeout=90)
        ev["end"] = time.monotonic()
        self.log(
            f"nemesis: {kind} "
            + json.dumps(
                {
                    k: (round(v, 2) if isinstance(v, float) else v)
                    for k, v in ev.items()
                    if not k.endswith("_at") and k != "start"
                }
            )
        )
        return ev

    def run(self, stop: threading.Event, *, until: float, gap: tuple[float, float], rounds: int | None = None) -> None:
        """Rounds of every kind in a random order, a quiet gap before each, until ``until``
        (an event is not started past it) or ``rounds`` rounds."""
        done = 0
        while not stop.is_set() and (rounds is None or done < rounds):
            kinds = list(KINDS)
            self.rng.shuffle(kinds)
            for kind in kinds:
                if stop.wait(self.rng.uniform(*gap)) or time.monotonic() > until:
                    return
                self.do(kind)
            done += 1

    def heal(self) -> None:
        """Everything back up, whatever happened: resumed, restarted, freed."""
        if self.paused is not None:
            self.paused.proc.send_signal(signal.SIGCONT)
            self.paused = None
        if self.etcd.proc is None or self.etcd.proc.poll() is not None:
            self.etcd.proc = None
            self.etcd.start()
        if self.minio.proc is None or self.minio.proc.poll() is not None:
            self.minio.proc = None
            self.minio.start()
        for disk in self.disks.values():
            if disk.mounted:
                disk.release()
        for node_id, node in list(self.cluster.nodes.items()):
            node.proc.send_signal(signal.SIGCONT)
            if node.proc.poll() is not None:
                restart_node(self.cluster, node_id, disk=self.disks.get(node_id))

    def close(self) -> None:
        self.gw.close()


# -- observing the outcome ----------------------------------------------------------------


def _retrying(fn: Callable[[], httpx.Response], timeout: float = 60.0) -> httpx.Response:
    """Reads after recovery: transient refusals (a branch moving, a restore) are retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = fn()
            if r.status_code < 500 and r.status_code not in (409, 412):
                return r
        except httpx.HTTPError:
            r = None
        if time.monotonic() > deadline:
            if r is None:
                raise TimeoutError("no answer")
            return r
        time.sleep(0.3)


def read_state(gw: httpx.Client, db: str, branch: str = "main", min_txid: int | None = None) -> dict[str, Any]:
    """Every KV item and SQL row of ``db``/``branch``: ``{"kv": {k: v}, "sql": {k: v}}`` or an error."""
    headers = {"Memoturn-Min-Txid": str(min_txid)} if min_txid else {}
    kv: dict[str, Any] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, "branch": branch}
        if cursor:
            params["cursor"] = cursor
        r = _retrying(lambda: gw.get(f"/v1/databases/{db}/kv", params=params, headers=headers))
        if r.status_code != 200:
            return {"error": f"kv list: {r.status_code} {r.text[:300]}"}
        page = r.json()
        kv.update({i["key"]: i["value"] for i in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            break
    r = _retrying(
        lambda: gw.post(
            f"/v1/databases/{db}/sql",
            params={"branch": branch},
            headers=headers,
            json={"statements": [{"sql": "SELECT k, v FROM h"}]},
        )
    )
    if r.status_code != 200:
        return {"error": f"sql select: {r.status_code} {r.text[:300]}", "kv": kv}
    rows = r.json()["results"][0]["rows"]
    dups = {k: n for k, n in Counter(k for k, _ in rows).items() if n > 1}
    return {"kv": kv, "sql": {k: v for k, v in rows}, "sql_duplicates": dups}


def fork(gw: httpx.Client, db: str, branch: str, txid: int, timeout: float = 60.0) -> httpx.Response:
    """Fork ``db`` at ``txid``; a retry that finds the branch made by its first attempt is a success."""
    deadline = time.monotonic() + timeout
    attempt = 0
    r: httpx.Response | None = None
    while True:
        attempt += 1
        try:
            r = gw.post(f"/v1/databases/{db}/branches", json={"name": branch, "txid": txid})
            if r.status_code == 201:
                return r
            if r.status_code == 409 and attempt > 1 and r.json().get("type") == "already-exists":
                return httpx.Response(201, json={"name": branch})
            if r.status_code < 500 and r.status_code != 409:
                return r
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return r if r is not None else httpx.Response(599, text="no answer")
        time.sleep(0.3)


def _acked_writes(ops: list[Op]) -> list[Op]:
    return [op for op in ops if op.kind in WRITES and op.outcome == "ok"]


def choose_cuts(history: History, dbs: list[str], per_db: int, rng: random.Random) -> dict[str, list[int]]:
    """Txids to fork at: for some acknowledged writes (the first after each nemesis event, and
    random ones) both ``txid - 1`` and ``txid``, which pins exactly which commit it was."""
    acked = [op for op in _acked_writes(history.ops) if op.txid]
    cuts: dict[str, list[int]] = {}
    for db in dbs:
        mine = sorted((op for op in acked if op.db == db), key=lambda o: o.end or 0)
        if not mine:
            continue
        picks: list[Op] = []
        for ev in history.events:
            after = next((op for op in mine if (op.end or 0) > ev.get("end", ev["start"])), None)
            if after is not None and after not in picks:
                picks.append(after)
        rng.shuffle(picks)
        picks = picks[: max(1, per_db - 1)]
        picks.append(rng.choice(mine))
        txids = sorted({t for op in picks[:per_db] for t in (op.txid - 1, op.txid) if t >= 1})
        cuts[db] = txids
    return cuts


def observe(gateway_url: str, history: History, dbs: list[str], *, cuts_per_db: int, seed: int) -> dict[str, Any]:
    """After recovery: the final state of every database, and forks at chosen txids."""
    acked = _acked_writes(history.ops)
    with httpx.Client(base_url=gateway_url, timeout=90) as gw:
        final = {}
        for db in dbs:
            top = max((op.txid or 0 for op in acked if op.db == db), default=0)
            final[db] = read_state(gw, db, min_txid=top or None)
        cut_states: list[dict[str, Any]] = []
        notes: list[str] = []
        for db, txids in choose_cuts(history, dbs, cuts_per_db, random.Random(seed)).items():
            for t in txids:
                branch = f"cut-{t}"
                r = fork(gw, db, branch, t)
                if r.status_code != 201:
                    notes.append(f"fork {db}@{t}: {r.status_code} {r.text[:200]}")
                    continue
                state = read_state(gw, db, branch)
                cut_states.append({"db": db, "txid": t, **state})
    return {"final": final, "cuts": cut_states, "notes": notes}


# -- the checker ---------------------------------------------------------------------------


def _anomaly(check: str, detail: str, history: History, ops: list[Op], **extra: Any) -> dict[str, Any]:
    t0 = history.t0
    lo = min(op.start for op in ops) - 3 if ops else 0
    hi = max((op.end or op.start) for op in ops) + 3 if ops else 0
    events = [e for e in history.events_json() if ops and e["start"] <= hi - t0 and e.get("end", 1e9) >= lo - t0]
    return {
        "check": check,
        "detail": detail,
        "ops": [op.as_dict(t0) for op in ops[:8]],
        "events_around": [
            {"id": e["id"], "kind": e["kind"], "start": e["start"], "end": e.get("end"), "node": e.get("node")}
            for e in events
        ],
        **extra,
    }


def _stored(state: dict[str, Any], op: Op) -> tuple[bool, Any]:
    table = state.get("sql" if op.kind == "sql-insert" else "kv")
    if table is None:
        return False, None
    return (op.key in table), table.get(op.key)


def check(history: History, observed: dict[str, Any]) -> list[dict[str, Any]]:
    """Every anomaly the history and the observed outcome show (see the module docstring)."""
    anomalies: list[dict[str, Any]] = []
    ops = [op for op in history.ops if op.end is not None]
    acked = _acked_writes(ops)
    final = observed["final"]

    # (a) every acknowledged write is there after recovery, with its value.
    for db, state in final.items():
        if "error" in state:
            anomalies.append(
                _anomaly("a-durability", f"{db} could not be read after recovery: {state['error']}", history, [])
            )
    for op in acked:
        state = final.get(op.db, {})
        if state.get("sql" if op.kind == "sql-insert" else "kv") is None:
            continue  # unreadable: reported above
        present, value = _stored(state, op)
        if not present:
            anomalies.append(
                _anomaly(
                    "a-durability",
                    f"acknowledged {op.kind} {op.db}/{op.key} (txid {op.txid}) is missing after recovery",
                    history,
                    [op],
                )
            )
        elif value != op.value:
            anomalies.append(
                _anomaly("a-durability", f"{op.db}/{op.key} reads {value!r}, acknowledged {op.value!r}", history, [op])
            )
        if op.txid is None:
            anomalies.append(_anomaly("b-txid-unique", "an acknowledged write carried no Memoturn-Txid", history, [op]))

    # (b) one txid, one commit: among the acknowledgements, and in the store.
    by_txid: dict[tuple[str, int], list[Op]] = defaultdict(list)
    for op in acked:
        if op.txid is not None:
            by_txid[(op.db, op.txid)].append(op)
    for (db, txid), same in sorted(by_txid.items()):
        if len(same) > 1:
            anomalies.append(
                _anomaly(
                    "b-txid-unique", f"{db} txid {txid} acknowledged for {len(same)} different writes", history, same
                )
            )
    for cut in observed.get("cuts", []):
        db, t = cut["db"], cut["txid"]
        if "error" in cut:
            anomalies.append(_anomaly("b-txid-unique", f"fork {db}@{t} unreadable: {cut['error']}", history, []))
            continue
        for op in acked:
            if op.db != db or op.txid is None:
                continue
            present, value = _stored(cut, op)
            if op.txid <= t and (not present or value != op.value):
                anomalies.append(
                    _anomaly(
                        "b-txid-unique",
                        f"store: {db} at txid {t} lacks {op.key}, acknowledged at txid {op.txid}",
                        history,
                        [op],
                        found=value,
                    )
                )
            elif op.txid > t and present:
                anomalies.append(
                    _anomaly(
                        "b-txid-unique",
                        f"store: {db} at txid {t} already holds {op.key}, acknowledged at the later txid {op.txid}",
                        history,
                        [op],
                    )
                )

    # (c) per client: Min-Txid honoured, txids never go back, reads see the client's own writes.
    by_client: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.client not in ("probe", "nemesis"):
            by_client[op.client].append(op)
    for client, mine in by_client.items():
        mine.sort(key=lambda o: o.start)
        seen: dict[str, Op] = {}
        wrote: dict[str, Op] = {}
        written: dict[tuple[str, str], Op] = {}
        for op in mine:
            if op.outcome != "ok":
                continue
            if op.kind == "get":
                if op.txid is None:
                    anomalies.append(_anomaly("c-monotonic", "a read answered without Memoturn-Txid", history, [op]))
                    continue
                if op.min_txid is not None and op.txid < op.min_txid:
                    anomalies.append(
                        _anomaly(
                            "c-monotonic",
                            f"read with Memoturn-Min-Txid {op.min_txid} answered txid {op.txid}",
                            history,
                            [op],
                        )
                    )
                w = written.get((op.db, op.key))
                if w is not None and not op.found:
                    anomalies.append(
                        _anomaly(
                            "c-monotonic",
                            f"{client} read its own acknowledged {op.db}/{op.key} "
                            f"(txid {w.txid}) as absent at txid {op.txid}",
                            history,
                            [w, op],
                        )
                    )
                elif w is not None and op.read_value != w.value:
                    anomalies.append(
                        _anomaly(
                            "c-monotonic",
                            f"{client} read {op.db}/{op.key} = {op.read_value!r}, wrote {w.value!r}",
                            history,
                            [w, op],
                        )
                    )
            if op.txid is None:
                continue
            prev = seen.get(op.db)
            if prev is not None and op.txid < (prev.txid or 0):
                anomalies.append(
                    _anomaly(
                        "c-monotonic",
                        f"{client} saw {op.db} go back from txid {prev.txid} to {op.txid}",
                        history,
                        [prev, op],
                    )
                )
            pw = wrote.get(op.db)
            if op.kind in WRITES and pw is not None and op.txid <= (pw.txid or 0):
                anomalies.append(
                    _anomaly(
                        "c-monotonic",
                        f"{client}'s write after its write at txid {pw.txid} was acknowledged at txid {op.txid}",
                        history,
                        [pw, op],
                    )
                )
            if prev is None or op.txid >= (prev.txid or 0):
                seen[op.db] = op
            if op.kind in WRITES:
                wrote[op.db] = op
                written[(op.db, op.key)] = op

    # (d) a frozen owner whose branch moved acknowledges nothing it was sent meanwhile.
    for ev in history.events:
        if ev["kind"] != "pause":
            continue
        tag = f"pause#{ev['id']}"
        probes = [op for op in ops if op.kind == "probe-put" and op.tag in (tag, tag + "/after")]
        bad = [op for op in probes if op.outcome == "ok"]
        if bad and ev.get("moved"):
            anomalies.append(
                _anomaly(
                    "d-paused-owner",
                    f"node {ev['node']} was frozen from "
                    f"{ev['paused_at'] - history.t0:.2f}s to {ev['resumed_at'] - history.t0:.2f}s "
                    f"while {ev['db']} moved to {ev.get('heir')}; it acknowledged {len(bad)} "
                    "writes sent to it directly",
                    history,
                    bad,
                )
            )

    # (e) not applied means not applied; nothing runs twice.
    for op in ops:
        if op.kind not in WRITES:
            continue
        if op.outcome == "fail":
            present, _ = _stored(final.get(op.db, {}), op)
            if present:
                anomalies.append(
                    _anomaly(
                        "e-not-applied",
                        f"{op.kind} {op.db}/{op.key} was answered {op.status} "
                        f"{op.problem} (not applied) but is in the database",
                        history,
                        [op],
                    )
                )
    for db, state in final.items():
        for key, n in sorted(state.get("sql_duplicates", {}).items()):
            mine = [op for op in ops if op.db == db and op.key == key]
            anomalies.append(
                _anomaly("e-not-applied", f"{db}: the insert of {key}, sent once, is there {n} times", history, mine)
            )
    return anomalies


# -- one whole run ---------------------------------------------------------------------------


def run_history(
    tmp_path: Any,
    *,
    duration: float,
    clients: int = 4,
    nodes: int = 3,
    ttl: int = 3,
    dbs: int = 4,
    seed: int | None = None,
    gap: tuple[float, float] = (2.0, 4.0),
    rounds: int | None = None,
    cuts_per_db: int = 2,
    tail: float = 4.0,
    disk_mb: int = 24,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start private etcd and MinIO, a cluster, clients and the nemesis; heal; observe; check.

    The operations run for ``duration`` seconds, and at least until the nemesis has finished
    its ``rounds`` plus ``tail`` quiet seconds. Returns the results (counts, events,
    anomalies, ...) and the :class:`History` under ``"history"``.
    """
    from pathlib import Path

    from support.etcd import EtcdServer
    from support.minio import MinioServer

    tmp_path = Path(tmp_path)
    seed = int(os.environ.get("MEMOTURN_HISTORY_SEED", "0")) or seed or random.randrange(1, 2**31)
    log(f"history run: seed {seed} (MEMOTURN_HISTORY_SEED={seed} repeats the choices)")
    wall0 = time.monotonic()
    history = History()
    names = [f"h{i}" for i in range(dbs)]
    # Every node's cache (``{data_dir}/cache``) on a small filesystem of its own.
    disks: dict[str, SmallDisk] = {}
    for i in range(nodes):
        disk = disks[f"n{i}"] = SmallDisk(str(tmp_path / f"n{i}" / "cache"), size_mb=disk_mb)
        if not disk.try_mount():
            log(f"disk-full nemesis skipped: {disk.reason}")
            break
    etcd = EtcdServer().start()
    minio = MinioServer().start()
    cluster: Cluster | None = None
    nemesis: Nemesis | None = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    results: dict[str, Any] = {
        "seed": seed,
        "nodes": nodes,
        "clients": clients,
        "databases": names,
        "lease_ttl_seconds": ttl,
        "durability": "durable",
        "small_cache_filesystems": {i: (f"tmpfs {disk_mb} MiB" if d.mounted else d.reason) for i, d in disks.items()},
    }
    try:
        env = {"MEMOTURN_DURABILITY": "durable", "MEMOTURN_RETENTION_SECONDS": "86400", **minio.credentials}
        cluster = Cluster(tmp_path, etcd, minio, nodes=nodes, ttl=ttl, env=env)
        with httpx.Client(base_url=cluster.gateway.url, timeout=60) as gw:
            for db in names:
                assert gw.post("/v1/databases", json={"name": db}).status_code == 201
                r = gw.post(
                    f"/v1/databases/{db}/sql",
                    json={"statements": [{"sql": "CREATE TABLE h(k TEXT NOT NULL, v TEXT NOT NULL)"}]},
                )
                assert r.status_code == 200, r.text
        time.sleep(0.5)  # the placement watch delivers the owners
        nemesis = Nemesis(cluster, etcd, minio, history, seed=seed + 1, ttl=ttl, dbs=names, disks=disks, log=log)
        workers = [Client(f"c{i}", cluster.gateway.url, names, history, seed=seed + 10 + i) for i in range(clients)]
        threads = [threading.Thread(target=w.run, args=(stop,), name=w.name, daemon=True) for w in workers]
        ops_start = time.monotonic()
        for t in threads:
            t.start()
        # With ``rounds`` the nemesis does all of them; otherwise it starts no event past the end.
        nemesis.run(stop, until=float("inf") if rounds else ops_start + duration - tail, gap=gap, rounds=rounds)
        time.sleep(max(tail, ops_start + duration - time.monotonic()))
        stop.set()
        for t in threads:
            t.join(timeout=120)
        results["ops_seconds"] = round(time.monotonic() - ops_start, 1)
        nemesis.heal()
        results["recovery_seconds"] = round(wait_healthy(cluster, timeout=90), 2)
        t_obs = time.monotonic()
        observed = observe(cluster.gateway.url, history, names, cuts_per_db=cuts_per_db, seed=seed)
        results["observe_seconds"] = round(time.monotonic() - t_obs, 1)
        anomalies = check(history, observed)
        impact = history.impact()
        results.update(
            operations=history.counts(),
            acknowledged_writes=len(_acked_writes(history.ops)),
            events=[{**ev, "ops_during": impact[ev["id"]]} for ev in history.events_json()],
            cuts_checked=[{"db": c["db"], "txid": c["txid"]} for c in observed["cuts"]],
            notes=observed["notes"],
            anomalies=anomalies,
        )
    finally:
        stop.set()
        if nemesis is not None:
            try:
                nemesis.heal()
            except Exception as exc:  # noqa: BLE001 - teardown goes on
                log(f"heal failed: {exc!r}")
            nemesis.close()
        for t in threads:
            t.join(timeout=5)
        if cluster is not None:
            cluster.close()
        for disk in disks.values():
            disk.unmount()
        minio.close()
        etcd.close()
    results["wall_seconds"] = round(time.monotonic() - wall0, 1)
    results["history"] = history
    return results
