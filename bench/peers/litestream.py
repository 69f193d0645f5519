"""Replication vs Litestream: commit-to-object-storage lag and restore time, same machine, same
run, same MinIO, same rows.

    python -m bench.peers.litestream [--quick]

Litestream (``.ci/install-litestream`` builds the pinned version from source through the Go module
proxy) replicates a SQLite database in WAL mode written by this process; Memoturn ships the same
commits through a node (``bench.storage.make_node``) to an ``s3://`` store on the same MinIO.

Workload, identical on both sides: one table ``kv(key TEXT PRIMARY KEY, value TEXT)``; a *paced*
phase of single-row commits (a 200-byte random value each) at a fixed rate, on which lag is
measured; then a *bulk* phase of multi-row commits that grows the database; then restores of the
whole database from the bucket. SQLite on both sides: WAL mode, ``synchronous=NORMAL`` (what the
node uses), no auto-checkpoint (Litestream and the node each checkpoint themselves).

Lag of a commit = from the moment the writer's commit call returns to the moment the commit is in
object storage in a form the system's restore would use, measured two ways:

* **reported** (headline): the replicator says so. Litestream: the ``ltx file uploaded`` debug
  log line for the L0 LTX file whose WAL range covers the commit, timestamped when this process
  reads it from Litestream's stdout (logged right after the PUT returned). Commit -> LTX file is
  exact: after every commit the writer notes where its commit frame ends in the WAL (salts +
  offset), and each L0 LTX header records the WAL salts, offset and size it was built from.
  Memoturn: the manifest compare-and-swap PUT returning (a tap on the node's store), with the
  ``head_txid`` it wrote; a commit is in when a landed manifest's head reaches its txid.
* **observed** (cross-check, identical for both): a separate process polls the bucket, LISTing
  Litestream's L0 prefix / GETting Memoturn's manifest every ``--poll`` seconds; a commit counts as
  in object storage at the end of the first poll that shows it. This is an upper bound carrying up
  to one poll period plus one request of observer delay on both sides.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from memoturn.storage.manifest import load_manifest
from memoturn.storage.store.s3 import S3Store
from support.minio import MinioServer

from bench.storage import make_node, summarize, write_results

LITESTREAM_VERSION = "v0.5.18"  # keep in sync with .ci/install-litestream
INSTALL = os.path.join(ROOT, ".ci", "install-litestream")
SCHEMA = "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
INSERT = "INSERT INTO kv(key, value) VALUES (?, ?)"
VALUE_BYTES = 200


def litestream_binary() -> str:
    """``$MEMOTURN_LITESTREAM_BIN``, else what ``.ci/install-litestream`` built (building it if absent)."""
    path = os.environ.get("MEMOTURN_LITESTREAM_BIN")
    if path:
        return path
    return subprocess.run(["bash", INSTALL], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


# -- workload ----------------------------------------------------------------------------------


def workload(
    paced: int, bulk_rows: int, batch: int, seed: int = 7
) -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """The same rows for both systems: ``paced`` single-row commits, then bulk commits of ``batch`` rows."""
    rng = random.Random(seed)
    row = lambda i: (f"k{i:09d}", rng.randbytes(VALUE_BYTES // 2).hex())  # noqa: E731 - a one-line helper next to its only use
    single = [row(i) for i in range(paced)]
    rows = [row(paced + i) for i in range(bulk_rows)]
    return single, [rows[i : i + batch] for i in range(0, len(rows), batch)]


def paced_commits(rows: list[tuple[str, str]], rate: float, commit) -> list[tuple[float, Any]]:
    """Commit one row at a time on a fixed schedule; ``(ack time, commit's position)`` per commit."""
    out = []
    period = 1.0 / rate
    start = time.monotonic()
    for i, r in enumerate(rows):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        out.append(commit([r]))
    return out


def digest(conn: Any) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for k, v in conn.execute("SELECT key, value FROM kv ORDER BY key").fetchall():
        h.update(k.encode() + b"\0" + v.encode() + b"\n")
        n += 1
    return n, h.hexdigest()


def lag_summary(samples: list[float]) -> dict[str, Any]:
    r = summarize(samples)
    r.pop("ops_per_s", None)
    r["max_ms"] = round(max(samples) * 1000, 4)
    return r


# -- the bucket observer (a separate process: it must not share a GIL with either writer) ------


def _observe(
    endpoint: str, creds: dict[str, str], bucket: str, mode: str, target: str, poll: float, stop: Any, out: Any
) -> None:
    import boto3
    import botocore.config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=creds["AWS_REGION"],
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    seen: dict[str, float] = {}  # list mode: key -> end of the first LIST showing it
    heads: list[tuple[float, int]] = []  # manifest mode: (end of GET, head_txid) on each change
    latencies: list[float] = []
    last_key, last_head = "", -1
    out.put("ready")
    while not stop.is_set():
        t0 = time.monotonic()
        if mode == "list":
            args = {"Bucket": bucket, "Prefix": target}
            if last_key:
                args["StartAfter"] = last_key
            while True:
                resp = client.list_objects_v2(**args)
                t1 = time.monotonic()
                for obj in resp.get("Contents", []):
                    seen.setdefault(obj["Key"], t1)
                    last_key = max(last_key, obj["Key"])
                if not resp.get("IsTruncated"):
                    break
                args["ContinuationToken"] = resp["NextContinuationToken"]
        else:
            try:
                body = client.get_object(Bucket=bucket, Key=target)["Body"].read()
                m = re.search(rb'"head_txid":(\d+)', body[:1024])
                head = int(m.group(1)) if m else -1
            except client.exceptions.NoSuchKey:
                head = -1
            t1 = time.monotonic()
            if head != last_head:
                heads.append((t1, head))
                last_head = head
        latencies.append(t1 - t0)
        stop.wait(poll)
    out.put(
        {
            "seen": seen,
            "heads": heads,
            "request_p50_ms": round(statistics.median(latencies) * 1000, 3),
            "polls": len(latencies),
        }
    )


class Observer:
    def __init__(self, minio: MinioServer, mode: str, target: str, poll: float) -> None:
        ctx = mp.get_context("spawn")
        self.stop_event, self.queue = ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(
            target=_observe,
            daemon=True,
            args=(minio.endpoint, minio.credentials, minio.bucket, mode, target, poll, self.stop_event, self.queue),
        )
        self.proc.start()
        assert self.queue.get(timeout=60) == "ready"

    def finish(self) -> dict[str, Any]:
        self.stop_event.set()
        result = self.queue.get(timeout=60)
        self.proc.join(10)
        return result


# -- Litestream ----------------------------------------------------------------------------------


class WalTracker:
    """Where each commit's last frame ends in the SQLite WAL: ``(generation, end offset)``.

    A generation is one WAL header salt pair (a WAL restart after a checkpoint changes the salts);
    frames with other salts are stale leftovers of an older generation and end the scan. Called
    right after each commit by the only writer, so every frame it reads is complete.
    """

    def __init__(self, db_path: str) -> None:
        self.path = db_path + "-wal"
        self.salts: list[bytes] = []
        self.offset = 32
        self.commit_end = 0
        self.page_size = 0

    def position(self) -> tuple[int, int]:
        with open(self.path, "rb") as f:
            hdr = f.read(32)
            if len(hdr) < 32:  # truncated by a checkpoint(TRUNCATE) and not yet rewritten
                return len(self.salts) - 1, self.commit_end
            salt = hdr[16:24]
            if not self.salts or salt != self.salts[-1]:
                self.salts.append(salt)
                self.offset, self.commit_end = 32, 0
                self.page_size = int.from_bytes(hdr[8:12], "big")
            size = os.fstat(f.fileno()).st_size
            frame = 24 + self.page_size
            f.seek(self.offset)
            while self.offset + frame <= size:
                fh = f.read(24)
                if fh[8:16] != salt:
                    break
                self.offset += frame
                if fh[4:8] != b"\0\0\0\0":  # "database size after commit": a commit frame
                    self.commit_end = self.offset
                f.seek(self.offset)
        return len(self.salts) - 1, self.commit_end


class Litestream:
    """``litestream replicate`` on one database, with its upload log read as it happens."""

    def __init__(self, binary: str, minio: MinioServer, tmp: str, name: str, interval: str) -> None:
        self.binary, self.minio, self.interval = binary, minio, interval
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.db_path = os.path.join(self.dir, "bench.db")
        self.replica_path = f"litestream/{name}/bench.db"
        self.l0_prefix = f"{self.replica_path}/0000/"  # level 0, in the bucket layout <path>/<level:04d>/
        self.config = os.path.join(self.dir, "litestream.yml")
        replica = f"""\
dbs:
  - path: {self.db_path}
    monitor-interval: {interval}
    replica:
      type: s3
      bucket: {minio.bucket}
      path: {self.replica_path}
      endpoint: {minio.endpoint}
      region: {minio.region}
      force-path-style: true
      sync-interval: {interval}
"""
        with open(self.config, "w") as f:  # replicate: debug log as JSON on stdout (the upload lines)
            f.write("logging:\n  level: debug\n  type: json\n" + replica)
        self.quiet_config = os.path.join(self.dir, "litestream-quiet.yml")
        with open(self.quiet_config, "w") as f:  # restore: stdout carries only the -json answer
            f.write("logging:\n  level: warn\n  stderr: true\n" + replica)
        self.env = dict(os.environ, **minio.credentials)  # credentials by environment, not in the file
        # Litestream's S3 client refuses to start when AWS_CA_BUNDLE is set ("unable to add custom
        # RootCAs HTTPClient"); the endpoint is plain HTTP on loopback, so no CA bundle is needed.
        self.env.pop("AWS_CA_BUNDLE", None)
        self.uploads: list[tuple[float, int]] = []  # (time read, L0 txid)
        self.first_upload = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.log_tail: list[str] = []

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "replicate", "-config", self.config],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + 60
        while not self.first_upload.wait(0.1):
            if self.proc.poll() is None and time.monotonic() < deadline:
                continue
            self.stop()
            raise RuntimeError("litestream uploaded nothing in 60s:\n" + "".join(self.log_tail[-30:]))

    def _read_log(self) -> None:
        assert self.proc and self.proc.stdout
        for raw in self.proc.stdout:
            t = time.monotonic()
            line = raw.decode(errors="replace")
            if '"ltx file uploaded"' in line:
                fields = json.loads(line, object_pairs_hook=list)  # "level" appears twice (slog's and ours)
                levels = [v for k, v in fields if k == "level" and isinstance(v, int)]
                if levels == [0]:
                    self.uploads.append((t, int(dict(fields)["maxTXID"], 16)))
                    self.first_upload.set()
            else:
                self.log_tail = (self.log_tail + [line])[-60:]

    def cpu_seconds(self) -> float:
        assert self.proc
        with open(f"/proc/{self.proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # final sync, then exit
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )


def ltx_headers(client: Any, bucket: str, prefix: str, out: dict | None = None) -> dict[str, tuple[int, bytes, int]]:
    """L0 object key -> (max txid, WAL salts, WAL end offset), from each object's 100-byte LTX header
    (ranged GETs, only for keys not already in ``out``)."""
    out = {} if out is None else out
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"] in out:
                continue
            hdr = client.get_object(Bucket=bucket, Key=obj["Key"], Range="bytes=0-99")["Body"].read()
            assert hdr[:4] == b"LTX1", obj["Key"]
            max_txid = int.from_bytes(hdr[24:32], "big")
            wal_offset, wal_size = int.from_bytes(hdr[48:56], "big"), int.from_bytes(hdr[56:64], "big")
            out[obj["Key"]] = (max_txid, hdr[64:72], wal_offset + wal_size)
    return out


def covered_at(
    commits: list[tuple[float, tuple[int, int]]], objects: list[tuple[float, int, int]]
) -> list[float | None]:
    """For each commit ``(ack, (gen, end))``, the earliest time ``t`` of an object ``(t, gen, end)`` whose
    position is at or past the commit's: for Litestream a later WAL generation, or the same one reaching
    the commit frame's end; for Memoturn ``(0, txid)`` against ``(0, head_txid)`` of a landed manifest."""
    objs = sorted(((g, e), t) for t, g, e in objects)
    suffix_min: list[float] = [0.0] * len(objs)
    best = float("inf")
    for i in range(len(objs) - 1, -1, -1):
        best = suffix_min[i] = min(best, objs[i][1])
    positions = [p for p, _ in objs]
    out: list[float | None] = []
    for _, pos in commits:
        i = bisect.bisect_left(positions, pos)
        out.append(suffix_min[i] if i < len(objs) else None)
    return out


def bucket_usage(client: Any, bucket: str, prefix: str) -> dict[str, Any]:
    n = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            n, size = n + 1, size + obj["Size"]
    return {"objects": n, "bytes": size, "megabytes": round(size / 1e6, 3)}


def lags(commits: list[tuple[float, Any]], at: list[float | None]) -> tuple[list[float], int]:
    samples = [t - ack for (ack, _), t in zip(commits, at, strict=False) if t is not None]
    return samples, sum(t is None for t in at)


def run_litestream(
    binary: str,
    minio: MinioServer,
    tmp: str,
    name: str,
    interval: str,
    single,
    batches,
    rate: float,
    poll: float,
    restores: int,
) -> dict[str, Any]:
    ls = Litestream(binary, minio, tmp, name, interval)
    conn = sqlite3.connect(ls.db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # Litestream checkpoints (its min-checkpoint-page-count)
    conn.execute("PRAGMA busy_timeout=10000")  # Litestream briefly locks the database to checkpoint
    conn.execute(SCHEMA)
    wal = WalTracker(ls.db_path)
    wal.position()

    def commit(rows: list[tuple[str, str]]) -> tuple[float, tuple[int, int]]:
        if len(rows) == 1:
            conn.execute(INSERT, rows[0])
        else:
            conn.execute("BEGIN")
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
        ack = time.monotonic()
        return ack, wal.position()

    client = minio.client()
    result: dict[str, Any] = {
        "system": "litestream",
        "version": LITESTREAM_VERSION,
        "monitor_interval": interval,
        "sync_interval": interval,
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        ls.start()
        observer = Observer(minio, "list", ls.l0_prefix, poll) if poll > 0 else None
        cpu0 = ls.cpu_seconds()
        t0 = time.monotonic()
        commits = paced_commits(single, rate, commit)
        paced_seconds = time.monotonic() - t0
        last = commits[-1][1]
        deadline, hdrs = time.monotonic() + 30, {}
        while time.monotonic() < deadline:  # until the last paced commit is uploaded
            ltx_headers(client, minio.bucket, ls.l0_prefix, hdrs)
            if any(s in wal.salts and (wal.salts.index(s), e) >= last for _, s, e in hdrs.values()):
                break
            time.sleep(0.2)
        result["litestream_cpu_seconds_paced"] = round(ls.cpu_seconds() - cpu0, 3)
        obs = observer.finish() if observer else None
        ltx_headers(client, minio.bucket, ls.l0_prefix, hdrs)
        gen = lambda salt: wal.salts.index(salt) if salt in wal.salts else -1  # noqa: E731 - a one-line helper next to its only use
        by_txid = {txid: (gen(salt), end) for txid, salt, end in hdrs.values()}
        reported = [(t, *by_txid[txid]) for t, txid in ls.uploads if txid in by_txid]
        samples, missing = lags(commits, covered_at(commits, reported))
        result["paced"] = {
            "commits": len(commits),
            "rate_per_s": rate,
            "seconds": round(paced_seconds, 2),
            "l0_files": len(hdrs),
        }
        result["lag_reported"] = {**lag_summary(samples), "not_covered": missing}
        if obs:
            seen = [(obs["seen"][k], *by_txid[v[0]]) for k, v in hdrs.items() if k in obs["seen"]]
            samples, missing = lags(commits, covered_at(commits, seen))
            result["lag_observed"] = {
                **lag_summary(samples),
                "not_covered": missing,
                "poll_s": poll,
                "request_p50_ms": obs["request_p50_ms"],
            }

        for rows in batches:
            commit(rows)
        ls.stop()  # SIGTERM: Litestream syncs what is left, then exits
        result["source_digest"] = digest(conn)
        conn.close()
        result["bucket"] = bucket_usage(client, minio.bucket, ls.replica_path + "/")
        if restores:
            plan = json.loads(ls.run("restore", "-config", ls.quiet_config, "-dry-run", "-json", ls.db_path).stdout)
            result["restore"] = restore_litestream(ls, tmp, name, restores, result["source_digest"])
            result["restore"]["plan_files"] = len(plan["files"])
            result["restore"]["plan_bytes"] = sum(f["size"] for f in plan["files"])
    finally:
        ls.stop()
        client.close()
    return result


def restore_litestream(ls: Litestream, tmp: str, name: str, rounds: int, expect: tuple[int, str]) -> dict[str, Any]:
    wall, internal = [], []
    for i in range(rounds):
        out = os.path.join(tmp, f"{name}-restored-{i}.db")
        t0 = time.perf_counter()
        r = ls.run("restore", "-config", ls.quiet_config, "-json", "-o", out, ls.db_path)
        wall.append(time.perf_counter() - t0)
        internal.append(json.loads(r.stdout)["duration_ms"] / 1000)
        size = os.path.getsize(out)
        with sqlite3.connect(out) as c:
            got = digest(c)
        assert tuple(got) == tuple(expect), f"litestream restore differs: {got} != {expect}"
        os.unlink(out)
    t0 = time.perf_counter()
    ls.run("version")
    start = time.perf_counter() - t0
    p50 = statistics.median(wall)
    return {
        "rounds": rounds,
        "seconds_p50": round(p50, 4),
        "seconds_min": round(min(wall), 4),
        "seconds_internal_p50": round(statistics.median(internal), 4),
        "process_start_seconds": round(start, 4),
        "db_bytes": size,
        "mb_per_s": round(size / 1e6 / p50, 1),
        "verified": True,
    }


# -- Memoturn ------------------------------------------------------------------------------------


class ManifestTap:
    """The node's store, recording when each manifest PUT (the CAS that makes commits durable) returns."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.landed: list[tuple[float, int]] = []  # (time the PUT returned, head_txid it wrote)

    def put(self, key: str, data: bytes, **kw: Any) -> str:
        etag = self._store.put(key, data, **kw)
        if key.endswith("/manifest.json"):
            t = time.monotonic()
            m = re.search(rb'"head_txid":(\d+)', data[:1024])
            self.landed.append((t, int(m.group(1))))
        return etag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run_memoturn(
    minio: MinioServer, tmp: str, single, batches, rate: float, poll: float, restores: int, durable: int
) -> dict[str, Any]:
    s3 = S3Store.from_url(minio.store_url("memoturn"))
    tap = ManifestTap(s3)
    node = make_node(tmp, "mt-src", tap)
    client = minio.client()
    result: dict[str, Any] = {
        "system": "memoturn",
        "mode": "standard",
        "settings": "defaults (bench.storage.make_node)",
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        node.create_database("bench")
        node.write("bench", lambda c: c.execute(SCHEMA), durable=True)

        def commit(rows: list[tuple[str, str]]) -> tuple[float, tuple[int, int]]:
            _, txid = node.write("bench", lambda c: c.executemany(INSERT, rows), durable=False)
            return time.monotonic(), (0, txid)  # a position comparable like the WAL's: (0, txid)

        observer = Observer(minio, "manifest", "memoturn/db/bench/main/manifest.json", poll) if poll > 0 else None
        tap.landed.clear()
        t0 = time.monotonic()
        commits = paced_commits(single, rate, commit)
        paced_seconds = time.monotonic() - t0
        node.flush("bench")
        obs = observer.finish() if observer else None
        # a commit is in once a landed manifest's head_txid reaches it
        samples, missing = lags(commits, covered_at(commits, [(t, 0, head) for t, head in tap.landed]))
        result["paced"] = {
            "commits": len(commits),
            "rate_per_s": rate,
            "seconds": round(paced_seconds, 2),
            "manifest_puts": len(tap.landed),
        }
        result["lag_reported"] = {**lag_summary(samples), "not_covered": missing}
        if obs:
            samples, missing = lags(commits, covered_at(commits, [(t, 0, head) for t, head in obs["heads"]]))
            result["lag_observed"] = {
                **lag_summary(samples),
                "not_covered": missing,
                "poll_s": poll,
                "request_p50_ms": obs["request_p50_ms"],
            }

        if durable:
            # Durable mode acknowledges only after the manifest CAS landed: the ack is the lag (and
            # it counts from before the commit). A database of its own, so "bench" stays identical.
            node.create_database("bench-durable")
            node.write("bench-durable", lambda c: c.execute(SCHEMA), durable=True)
            acks = []

            def durable_commit(rows: list[tuple[str, str]]) -> None:
                t = time.monotonic()
                node.write("bench-durable", lambda c: c.executemany(INSERT, rows), durable=True)
                acks.append(time.monotonic() - t)

            paced_commits(single[:durable], rate, durable_commit)
            result["durable_ack"] = lag_summary(acks)

        for rows in batches:
            commit(rows)
        node.flush("bench")
        result["source_digest"] = node.read("bench", digest)[0]
    finally:
        node.stop()
    result["bucket"] = bucket_usage(client, minio.bucket, "memoturn/db/bench/")
    client.close()
    if restores:
        result["restore"] = restore_memoturn(s3, tmp, restores, result["source_digest"])
    s3.close()
    return result


def restore_memoturn(s3: S3Store, tmp: str, rounds: int, expect: tuple[int, str]) -> dict[str, Any]:
    """Time from 'not on this node' to an open handle at the head, on a fresh node each round."""
    manifest, _ = load_manifest(s3, "bench", "main")
    snap = max(manifest.snapshots, key=lambda s: s.txid, default=None)
    after = [s for s in manifest.segments if s.last_txid > (snap.txid if snap else 0)]
    samples = []
    for i in range(rounds):
        node = make_node(tmp, f"mt-restore-{i}", s3)
        try:
            t0 = time.perf_counter()
            db = node.open("bench")
            samples.append(time.perf_counter() - t0)
            size = os.path.getsize(db.path)
            got = node.read("bench", digest)[0]
            assert tuple(got) == tuple(expect), f"memoturn restore differs: {got} != {expect}"
        finally:
            node.stop()
    p50 = statistics.median(samples)
    return {
        "rounds": rounds,
        "seconds_p50": round(p50, 4),
        "seconds_min": round(min(samples), 4),
        "plan_files": (1 if snap else 0) + len(after),
        "plan_bytes": (snap.size if snap else 0) + sum(s.size for s in after),
        "db_bytes": size,
        "mb_per_s": round(size / 1e6 / p50, 1),
        "verified": True,
    }


# -- main ----------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    head = (
        "| system | lag p50 ms | lag p99 ms | lag max ms | observed p50/p99 ms | restore s | restore MB/s "
        "| DB MB | bucket MB (objects) |"
    )
    lines = [head, "|" + "---|" * 9]
    for name, r in results["runs"].items():
        lag, obs = r.get("lag_reported", {}), r.get("lag_observed")
        rest = r.get("restore")
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |".format(
                name,
                lag.get("p50_ms", "-"),
                lag.get("p99_ms", "-"),
                lag.get("max_ms", "-"),
                f"{obs['p50_ms']} / {obs['p99_ms']}" if obs else "-",
                rest["seconds_p50"] if rest else "-",
                rest["mb_per_s"] if rest else "-",
                round(rest["db_bytes"] / 1e6, 2) if rest else "-",
                r["bucket"]["megabytes"],
                r["bucket"]["objects"],
            )
        )
        if "durable_ack" in r:
            d = r["durable_ack"]
            lines.append(
                f"| memoturn durable (ack = shipped) | {d['p50_ms']} | {d['p99_ms']} | {d['max_ms']} "
                "| - | - | - | - | - |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (about a minute once Litestream is built)")
    parser.add_argument(
        "--interval",
        default="1ms",
        help="Litestream monitor-interval and sync-interval for the headline run (default 1ms; "
        "its config accepts any positive duration)",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="paced commits per second")
    parser.add_argument("--poll", type=float, default=0.005, help="bucket observer period in seconds (0: off)")
    args = parser.parse_args()
    paced = 300 if args.quick else 2000
    bulk_rows = 20_000 if args.quick else 150_000
    batch = 100
    restores = 3 if args.quick else 5
    single, batches = workload(paced, bulk_rows, batch)
    binary = litestream_binary()
    version = subprocess.run([binary, "version"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="memoturn-peers-")
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version,
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.peers.litestream" + (" --quick" if args.quick else ""),
        "litestream": {
            "version": version,
            "binary": binary,
            "built_from": f"github.com/benbjohnson/litestream/cmd/litestream@{LITESTREAM_VERSION}",
        },
        "workload": {
            "paced_commits": paced,
            "rate_per_s": args.rate,
            "value_bytes": VALUE_BYTES,
            "bulk_rows": bulk_rows,
            "bulk_rows_per_commit": batch,
            "rows_total": paced + bulk_rows,
            "sqlite": "WAL, synchronous=NORMAL, wal_autocheckpoint=0 (the replicator checkpoints)",
        },
        "runs": {},
    }
    try:
        with MinioServer(bucket="peers") as minio:
            os.environ.update(minio.credentials)  # boto3's default chain, for the node's S3 store
            runs = results["runs"]
            runs[f"litestream ({args.interval} intervals)"] = run_litestream(
                binary, minio, tmp, "ls-low", args.interval, single, batches, args.rate, args.poll, restores
            )
            runs["memoturn standard"] = run_memoturn(
                minio, tmp, single, batches, args.rate, args.poll, restores, durable=paced // 3
            )
            # Litestream's defaults (1s + 1s), lag only: what an unconfigured deployment sees.
            n = 100 if args.quick else 500
            runs["litestream (default 1s intervals)"] = run_litestream(
                binary, minio, tmp, "ls-default", "1s", single[:n], [], args.rate, args.poll, 0
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_results("peers-litestream", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
