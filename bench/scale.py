"""Scale benchmark (issue 7): one node, a population of up to 1,000,000 databases.

A node must serve a working set out of a huge population with memory that does not grow
with the number of databases ever touched. This drives a real ``memoturnd`` child process
over HTTP (so RSS and open file descriptors are the node's own, read from
``/proc/<pid>/status`` and ``/proc/<pid>/fd``), on the file store in a temporary directory
(or ``--store s3``: a MinIO server started for the run), with the tier budgets
``MEMOTURN_MAX_HOT=1000`` and a small ``MEMOTURN_MAX_DISK_BYTES``. The population grows in
stages (default 10k -> 100k -> 1M, cumulative); at each stage:

1. **create** up to N databases: in bulk with ``--threads`` concurrent HTTP clients (for
   throughput), then a sample of ``--create-sample`` more one at a time (for latency);
2. **touch** a random ``min(N/10, 100k)`` of the whole population: one KV write each,
   ``--threads`` concurrent clients (the first write to a database restores it, bootstraps
   its schema, takes ownership and ships a segment);
3. **keep 1,000 hot**: a fixed hot set (chosen once) is written once, then read in a loop;
   the hot read figures come from the later passes, once the tier pass has closed the handles
   beyond the budget;
4. **resources** with 1,000 hot: VmRSS and VmHWM, open fds, threads, and disk bytes of the
   node's cache directory and of the store, measured separately (``du``);
5. **cold wake**: touched databases that the tier budgets have pushed off local disk (the
   node's ``describe`` says ``cold``) are read once each, one at a time.

Latencies are client-side over HTTP on 127.0.0.1; ``http_floor`` (``GET /v1/health``) is
reported so the node's share can be read off. Growth ratios between consecutive stages are
given for every figure. Fsync of the file store is on unless ``--no-fsync`` (said in the
results). ``--quick`` is 10k then 30k.

    python -m bench.scale [--sizes 10000,100000,1000000] [--quick] [--threads 8] [--no-fsync] [--store file|s3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from bench.storage import summarize, write_results

GiB = 1024**3
MiB = 1024**2
TARGET_RSS_BYTES = 1 * GiB


def name_of(i: int) -> str:
    return f"scale-{i:07d}"


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]


# -- the node process ----------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon/File/Shmem (bytes) and Threads of a process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
            elif key == "Threads":
                out[key] = int(value)
    return out


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def disk_usage(path: str) -> dict[str, int]:
    """Allocated bytes and inodes below ``path`` (GNU du; a Python walk if du fails)."""
    if not os.path.exists(path):
        return {"bytes": 0, "inodes": 0}
    try:
        size = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, check=True).stdout
        inodes = subprocess.run(["du", "-s", "--inodes", path], capture_output=True, text=True, check=True).stdout
        return {"bytes": int(size.split()[0]), "inodes": int(inodes.split()[0])}
    except (OSError, subprocess.CalledProcessError, ValueError):
        total, count = 0, 0
        for dirpath, dirnames, filenames in os.walk(path):
            for entry in [*dirnames, *filenames]:
                try:
                    total += os.lstat(os.path.join(dirpath, entry)).st_blocks * 512
                    count += 1
                except FileNotFoundError:
                    pass
        return {"bytes": total, "inodes": count + 1}


class Client:
    """One keep-alive HTTP/1.1 connection per thread to the node."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return conn

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, float]:
        """``(status, body, seconds)``; reconnects once if the server closed an idle connection."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            conn = self._conn()
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                return resp.status, payload, time.perf_counter() - t0
            except (http.client.HTTPException, ConnectionError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def expect(self, method: str, path: str, body: Any = None, ok: Sequence[int] = (200,)) -> float:
        status, payload, seconds = self.call(method, path, body)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
        return seconds


def metric_values(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text page, plus tier transitions by label."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("memoturn_tier_transitions_total"):
            out[name.replace('memoturn_tier_transitions_total{to="', "tier_to_").rstrip('"}')] = float(value)
        elif "{" not in name:
            out[name] = float(value)
    return out


class Sampler:
    """Polls the node once a second: peak RSS, fds and hot handles within each phase."""

    def __init__(self, pid: int, client: Client, interval: float = 1.0) -> None:
        self.pid, self.client, self.interval = pid, client, interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.reset()
        self._thread = threading.Thread(target=self._run, name="scale-sampler", daemon=True)
        self._thread.start()

    def reset(self) -> dict[str, float]:
        with self._lock:
            peaks, self.peaks = getattr(self, "peaks", {}), {"rss_bytes": 0, "fds": 0, "hot": 0, "warm": 0}
        return peaks

    def sample(self) -> None:
        status = proc_status(self.pid)
        fds = open_fds(self.pid)
        _, body, _ = self.client.call("GET", "/metrics")
        m = metric_values(body.decode())
        with self._lock:
            p = self.peaks
            p["rss_bytes"] = max(p["rss_bytes"], status["VmRSS"])
            p["fds"] = max(p["fds"], fds)
            p["hot"] = max(p["hot"], m.get("memoturn_hot_databases", 0))
            p["warm"] = max(p["warm"], m.get("memoturn_warm_databases", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - the node may be going away
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def parallel(
    items: Sequence[int], threads: int, fn: Callable[[int], float], progress: str = ""
) -> tuple[list[float], float]:
    """Run ``fn(i)`` for every item on ``threads`` threads; per-call seconds and wall time."""
    samples: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    counter = iter(range(len(items)))
    lock = threading.Lock()
    done = [0]
    start = time.perf_counter()

    def work(slot: int) -> None:
        while not errors:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            try:
                samples[slot].append(fn(items[k]))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
            with lock:
                done[0] += 1
                if progress and done[0] % 50_000 == 0:
                    rate = done[0] / (time.perf_counter() - start)
                    log(f"  {progress}: {done[0]:,}/{len(items):,} ({rate:,.0f}/s)")

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return [s for part in samples for s in part], time.perf_counter() - start


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the benchmark -------------------------------------------------------------------------


class ScaleBench:
    def __init__(self, args: argparse.Namespace, port: int, pid: int, cache_dir: str, store_dir: str) -> None:
        self.args = args
        self.client = Client(port)
        self.pid = pid
        self.cache_dir = cache_dir
        self.store_dir = store_dir
        self.rng = random.Random(args.seed)
        self.population = 0
        self.hot_set = self.rng.sample(range(min(args.sizes[0], 10_000)), min(args.hot, args.sizes[0]))
        self.sampler = Sampler(pid, self.client)
        self.touched_total = 0

    def kv_path(self, i: int, key: str) -> str:
        return f"/v1/databases/{name_of(i)}/kv/{key}"

    def create(self, i: int) -> float:
        return self.client.expect("POST", "/v1/databases", {"name": name_of(i)}, ok=(201, 409))

    def touch(self, i: int) -> float:
        return self.client.expect("PUT", self.kv_path(i, "touch"), {"value": {"i": i, "at": time.time()}})

    def tier(self, i: int) -> str:
        status, body, _ = self.client.call("GET", f"/v1/databases/{name_of(i)}")
        if status != 200:
            raise RuntimeError(f"describe {name_of(i)}: {status} {body[:200]!r}")
        return json.loads(body)["tier"]

    def node_metrics(self) -> dict[str, float]:
        _, body, _ = self.client.call("GET", "/metrics")
        return metric_values(body.decode())

    def stage(self, n: int) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {"population": n, "label": label(n)}
        t_stage = time.perf_counter()

        # 1. create: bulk (throughput), then a sequential sample (latency at this population).
        sample = min(a.create_sample, n - self.population)
        bulk = range(self.population, n - sample)
        log(f"{label(n)}: creating {len(bulk):,} databases with {a.threads} threads, then {sample} one at a time")
        self.sampler.reset()
        _, bulk_seconds = parallel(bulk, a.threads, self.create, progress="create")
        timed = [self.create(i) for i in range(n - sample, n)]
        self.population = n
        out["create"] = summarize(
            timed,
            bulk_rate_per_s=round(len(bulk) / bulk_seconds, 1) if len(bulk) else None,
            bulk_count=len(bulk),
            bulk_seconds=round(bulk_seconds, 1),
            bulk_threads=a.threads,
        )
        out["create_peaks"] = self.sampler.reset()

        # 2. touch a random tenth (at most 100k) of the whole population: one KV write each.
        k = min(n // 10, a.max_touch)
        touched = self.rng.sample(range(n), k)
        log(f"{label(n)}: touching {k:,} random databases with {a.threads} threads")
        touch_samples, touch_seconds = parallel(touched, a.threads, self.touch, progress="touch")
        self.touched_total += k
        out["touch"] = summarize(
            touch_samples, touch_seconds, threads=a.threads, note="latency under the concurrency of all threads"
        )
        out["touch_peaks"] = self.sampler.reset()

        # 3. keep 1,000 hot: write the hot set once, read it in a loop.
        log(f"{label(n)}: hot set of {len(self.hot_set)}: one write pass, then {a.hot_passes} read passes")
        for i in self.hot_set:
            self.client.expect("PUT", self.kv_path(i, "hot"), {"value": i})
        time.sleep(2.5 * a.tier_interval)  # the tier pass closes the touched handles beyond the budget
        for i in self.hot_set:
            self.client.expect("GET", self.kv_path(i, "hot"))
        time.sleep(1.5 * a.tier_interval)
        hot_samples: list[float] = []
        for _ in range(a.hot_passes):
            hot_samples += [self.client.expect("GET", self.kv_path(i, "hot")) for i in self.hot_set]
        out["hot_read"] = summarize(hot_samples)
        probe = self.rng.sample(self.hot_set, min(50, len(self.hot_set)))
        out["hot_set_still_hot"] = f"{sum(self.tier(i) == 'hot' for i in probe)}/{len(probe)} probed"
        floor = [self.client.expect("GET", "/v1/health") for _ in range(500)]
        out["http_floor"] = summarize(floor)
        out["hot_peaks"] = self.sampler.reset()

        # 4. resources with 1,000 hot.
        time.sleep(1.5 * a.tier_interval)
        status = proc_status(self.pid)
        m = self.node_metrics()
        out["resources"] = {
            "rss_bytes": status["VmRSS"],
            "rss_peak_bytes": status["VmHWM"],
            "rss_anon_bytes": status.get("RssAnon"),
            "rss_file_bytes": status.get("RssFile"),
            "rss_shmem_bytes": status.get("RssShmem"),
            "open_fds": open_fds(self.pid),
            "threads": status["Threads"],
            "hot": m.get("memoturn_hot_databases"),
            "warm": m.get("memoturn_warm_databases"),
            "warm_bytes_accounted": m.get("memoturn_cache_disk_bytes"),
            "cache_dir": disk_usage(self.cache_dir),
            "store_dir": disk_usage(self.store_dir),
            "databases_touched_so_far": self.touched_total,
            "restores": m.get("memoturn_restores_total"),
            "to_warm": m.get("tier_to_warm"),
            "to_cold": m.get("tier_to_cold"),
        }

        # 5. cold wake: touched databases (not in the hot set) that the budgets pushed off disk.
        hot = set(self.hot_set)
        candidates = [i for i in touched if i not in hot]
        self.rng.shuffle(candidates)
        cold: list[float] = []
        seen = {"hot": 0, "warm": 0, "cold": 0}
        for i in candidates[: a.cold_wakes * 10]:
            tier = self.tier(i)
            seen[tier] += 1
            if tier != "cold":
                continue
            cold.append(self.client.expect("GET", self.kv_path(i, "touch")))
            if len(cold) >= a.cold_wakes:
                break
        out["cold_wake"] = summarize(cold, candidates_by_tier=seen) if cold else {"n": 0, "candidates_by_tier": seen}
        out["stage_seconds"] = round(time.perf_counter() - t_stage, 1)
        log(
            f"{label(n)}: done in {out['stage_seconds']} s: RSS {status['VmRSS'] / MiB:.0f} MiB, "
            f"{out['resources']['open_fds']} fds, hot {out['resources']['hot']:.0f}, "
            f"cache {out['resources']['cache_dir']['bytes'] / MiB:.0f} MiB, "
            f"store {out['resources']['store_dir']['bytes'] / MiB:.0f} MiB"
        )
        return out


FIGURES: list[tuple[str, Callable[[dict[str, Any]], float | None], str]] = [
    ("rss_mib", lambda s: s["resources"]["rss_bytes"] / MiB, "node VmRSS with 1,000 hot (MiB)"),
    ("rss_peak_mib", lambda s: s["resources"]["rss_peak_bytes"] / MiB, "node VmHWM since start (MiB)"),
    ("rss_anon_mib", lambda s: (s["resources"]["rss_anon_bytes"] or 0) / MiB, "  of which anonymous (MiB)"),
    ("rss_file_mib", lambda s: (s["resources"]["rss_file_bytes"] or 0) / MiB, "  of which file-backed (MiB)"),
    ("open_fds", lambda s: s["resources"]["open_fds"], "open file descriptors"),
    (
        "hot_peak",
        lambda s: max(s["create_peaks"]["hot"], s["touch_peaks"]["hot"], s["hot_peaks"]["hot"]),
        "most hot handles seen (1 s samples)",
    ),
    ("warm", lambda s: s["resources"]["warm"], "warm files"),
    ("cache_dir_mib", lambda s: s["resources"]["cache_dir"]["bytes"] / MiB, "cache dir allocated (MiB)"),
    ("cache_dir_inodes", lambda s: s["resources"]["cache_dir"]["inodes"], "cache dir inodes"),
    ("store_dir_mib", lambda s: s["resources"]["store_dir"]["bytes"] / MiB, "store dir allocated (MiB)"),
    ("create_p50_ms", lambda s: s["create"]["p50_ms"], "create p50 (sequential, ms)"),
    ("create_p99_ms", lambda s: s["create"]["p99_ms"], "create p99 (sequential, ms)"),
    ("create_bulk_per_s", lambda s: s["create"]["bulk_rate_per_s"], "create throughput (bulk, /s)"),
    ("touch_p50_ms", lambda s: s["touch"]["p50_ms"], "touch p50 (concurrent, ms)"),
    ("touch_per_s", lambda s: s["touch"]["ops_per_s"], "touch throughput (/s)"),
    ("hot_read_p50_ms", lambda s: s["hot_read"]["p50_ms"], "hot read p50 (ms)"),
    ("hot_read_p99_ms", lambda s: s["hot_read"]["p99_ms"], "hot read p99 (ms)"),
    ("cold_wake_p50_ms", lambda s: s["cold_wake"].get("p50_ms"), "cold wake p50 (ms)"),
    ("cold_wake_p99_ms", lambda s: s["cold_wake"].get("p99_ms"), "cold wake p99 (ms)"),
    ("http_floor_p50_ms", lambda s: s["http_floor"]["p50_ms"], "GET /v1/health p50 (ms)"),
]


def growth(stages: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """For each pair of consecutive stages, every figure's ratio later/earlier."""
    out: dict[str, dict[str, float | None]] = {}
    for a, b in zip(stages, stages[1:], strict=False):
        ratios: dict[str, float | None] = {}
        for key, fn, _ in FIGURES:
            x, y = fn(a), fn(b)
            ratios[key] = round(y / x, 3) if x and y is not None else None
        ra, rb = a["resources"], b["resources"]
        ratios["rss_bytes_per_extra_database_touched"] = round(
            (rb["rss_bytes"] - ra["rss_bytes"])
            / max(1, rb["databases_touched_so_far"] - ra["databases_touched_so_far"]),
            1,
        )
        ratios["rss_bytes_per_extra_database_created"] = round(
            (rb["rss_bytes"] - ra["rss_bytes"]) / max(1, b["population"] - a["population"]), 2
        )
        out[f"{b['label']}/{a['label']}"] = ratios
    return out


def table(stages: list[dict[str, Any]], ratios: dict[str, dict[str, float | None]]) -> str:
    heads = ["figure", *[s["label"] for s in stages], *ratios]
    rows = []
    for key, fn, desc in FIGURES:
        cells = [desc]
        for s in stages:
            v = fn(s)
            cells.append("-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"))
        for r in ratios.values():
            v = r.get(key)
            cells.append("-" if v is None else f"x{v:.2f}")
        rows.append(cells)
    widths = [max(len(str(r[c])) for r in [heads, *rows]) for c in range(len(heads))]

    def fmt(r: list) -> str:
        cells = (
            str(x).ljust(w) if c == 0 else str(x).rjust(w) for c, (x, w) in enumerate(zip(r, widths, strict=False))
        )
        return "| " + " | ".join(cells) + " |"

    return "\n".join([fmt(heads), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)])


def raise_fd_limit(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        log(f"warning: RLIMIT_NOFILE {soft} < {need}: the node may run out of file descriptors")
    return soft


def finish(
    args: argparse.Namespace,
    command: str,
    started: float,
    baseline: dict[str, Any],
    stages: list[dict[str, Any]],
    fd_limit: int,
) -> None:
    """Write bench/results/NAME.json and print the table (before the temp dir is removed)."""
    ratios = growth(stages)
    last = stages[-1]["resources"]
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - (time.perf_counter() - started))),
        "command": command,
        "total_seconds": round(time.perf_counter() - started, 1),  # excludes removing the temp dir
        "setup": {
            "node": "memoturnd child process over HTTP on 127.0.0.1 (RSS and fds read from /proc/<pid>)",
            "store": args.store,
            "file_store_fsync": None if args.store == "s3" else not args.no_fsync,
            "max_hot": args.hot,
            "max_disk_bytes": args.max_disk_mib * MiB,
            "tier_interval_seconds": args.tier_interval,
            "client_threads": args.threads,
            "rlimit_nofile": fd_limit,
            "seed": args.seed,
            "sizes": args.sizes,
            "touches_per_stage": f"min(N/10, {args.max_touch})",
            "create": "bulk on client_threads concurrent connections (throughput), then create_sample one at a time (latency)",
        },
        "baseline": baseline,
        "stages": stages,
        "growth": ratios,
        "target": {
            "rss_bytes": last["rss_bytes"],
            "rss_peak_bytes": last["rss_peak_bytes"],
            "target_rss_bytes": TARGET_RSS_BYTES,
            "population": stages[-1]["population"],
            "met": last["rss_peak_bytes"] <= TARGET_RSS_BYTES,
        },
    }
    write_results(args.name, results)
    print()
    print(
        f"{command}  ({results['total_seconds']:.0f} s; {args.store} store, fsync "
        f"{'off' if args.no_fsync else 'on'}, max_hot {args.hot}, max_disk {args.max_disk_mib} MiB, "
        f"{args.threads} client threads)"
    )
    print(table(stages, ratios))
    print(
        f"target: peak RSS {last['rss_peak_bytes'] / MiB:.0f} MiB <= {TARGET_RSS_BYTES / MiB:.0f} MiB "
        f"with {stages[-1]['population']:,} databases: {'met' if results['target']['met'] else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        type=lambda t: [parse_size(x) for x in t.split(",")],
        default=[10_000, 100_000, 1_000_000],
        help="cumulative population sizes (default 10000,100000,1000000; k/M suffixes accepted)",
    )
    p.add_argument("--quick", action="store_true", help="10k then 30k (about two minutes)")
    p.add_argument("--threads", type=int, default=8, help="concurrent HTTP clients for bulk create and touch")
    p.add_argument("--hot", type=int, default=1000, help="size of the hot set (and MEMOTURN_MAX_HOT)")
    p.add_argument("--max-disk-mib", type=int, default=4, help="MEMOTURN_MAX_DISK_BYTES in MiB (the warm budget)")
    p.add_argument("--max-touch", type=int, default=100_000, help="at most this many touches per stage")
    p.add_argument("--hot-passes", type=int, default=3, help="measured read passes over the hot set")
    p.add_argument("--cold-wakes", type=int, default=200, help="cold wakes measured per stage")
    p.add_argument("--create-sample", type=int, default=1000, help="creates timed one at a time per stage")
    p.add_argument("--tier-interval", type=float, default=1.0, help="MEMOTURN_TIER_INTERVAL_SECONDS")
    p.add_argument("--no-fsync", action="store_true", help="file store without fsync (file://…?fsync=false)")
    p.add_argument("--store", choices=["file", "s3"], default="file", help="file store in the temp dir, or MinIO")
    p.add_argument("--tmp", default=None, help="parent of the temporary directory (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--name", default="scale", help="results file bench/results/NAME.json")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = [10_000, 30_000]
        args.cold_wakes = min(args.cold_wakes, 100)
        args.create_sample = min(args.create_sample, 500)
        args.hot_passes = min(args.hot_passes, 2)
    if args.sizes != sorted(set(args.sizes)):
        p.error("--sizes must increase")
    command = "python -m bench.scale " + " ".join(sys.argv[1:] if argv is None else argv)

    from support.nodes import Memoturnd

    fd_limit = raise_fd_limit(3 * args.hot + 512)
    tmp = tempfile.mkdtemp(prefix="memoturn-scale-", dir=args.tmp)
    data_dir = os.path.join(tmp, "node")
    minio = None
    env = {
        "MEMOTURN_MAX_HOT": str(args.hot),
        "MEMOTURN_MAX_DISK_BYTES": str(args.max_disk_mib * MiB),
        "MEMOTURN_TIER_INTERVAL_SECONDS": str(args.tier_interval),
        "MEMOTURN_NODE_ID": "scale",
    }
    if args.store == "s3":
        from support.minio import MinioServer

        minio = MinioServer().start()
        env.update(minio.credentials)
        store_url, store_dir = minio.store_url("scale"), minio.data_dir
    else:
        store_dir = os.path.join(tmp, "store")
        store_url = "file://" + store_dir + ("?fsync=false" if args.no_fsync else "")
    node = Memoturnd(data_dir, store_url, env=env)
    started = time.perf_counter()
    stages: list[dict[str, Any]] = []
    try:
        node.wait_ready(60)
        log(f"memoturnd pid {node.proc.pid} on port {node.port}; data in {tmp}; store {store_url}")
        baseline = {"rss_bytes": proc_status(node.proc.pid)["VmRSS"], "open_fds": open_fds(node.proc.pid)}
        bench = ScaleBench(args, node.port, node.proc.pid, os.path.join(data_dir, "cache"), store_dir)
        try:
            for n in args.sizes:
                stages.append(bench.stage(n))
        finally:
            bench.sampler.stop()
        node.kill(15)
        finish(args, command, started, baseline, stages, fd_limit)
    finally:
        if node.proc.poll() is None:
            node.kill(9)
        node.client.close()
        node.log.close()
        if minio is not None:
            minio.close()
        if args.keep:
            log(f"kept {tmp}")
        else:
            log(f"removing {tmp}")
            shutil.rmtree(tmp, ignore_errors=True)
            if minio is not None:
                shutil.rmtree(minio.data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
