"""Benchmark report: PNG plots and the figures tables of docs/benchmarks.md, from bench/results/.

    python -m bench.report [--results bench/results] [--out docs/img] [--doc docs/benchmarks.md] [--check]

Reads every result file it knows (``SOURCES``) that exists, draws its plots with matplotlib (Agg
backend, no display) into ``--out``, and rewrites, inside ``--doc``, every block between
``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` from the JSON, so the document never
disagrees with the results. Everything outside the markers is left as it is. A missing result
file is said so (on standard output and in its block), never an error; a file that exists but
cannot be read or has an unexpected shape is reported and makes the exit status 1. ``--check``
writes nothing and exits 1 when the document's blocks are not what the JSON gives (plots are not
checked). A ``--doc`` that does not exist is created with every block.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# file under the results directory -> the command that writes it
SOURCES: dict[str, str] = {
    "storage.json": "python -m bench.storage",
    "cluster.json": "python -m bench.cluster",
    "throughput.json": "python -m bench.throughput",
    "loadtest/summary.json": "make loadtest",
    "memory.json": "python -m bench.memory",
    "branching.json": "python -m bench.branching",
    "recall.json": "make bench-recall",
    "peers-sqlite-vec.json": "python -m bench.peers.sqlite_vec",
    "peers-litestream.json": "python -m bench.peers.litestream",
    "scale.json": "python -m bench.scale",
    "replica.json": "python -m bench.replica",
    "e2e.json": "make e2e",
}

MARKER = re.compile(r"(<!-- figures:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)
MiB = 1024**2


# -- formatting ---------------------------------------------------------------------------------


def num(x: Any, digits: int | None = None) -> str:
    """A number for a table: ``-`` for none, adaptive precision unless ``digits`` is given."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if not isinstance(x, (int, float)):
        return str(x)
    if digits is not None:
        return f"{x:,.{digits}f}"
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    a = abs(x)
    return f"{x:,.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 0.1 else f"{x:.3f}"


def q4(x: Any) -> str:
    """A recall metric (0..1) as the JSON holds it: four decimals."""
    return "-" if x is None else f"{x:.4f}"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(num(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def met(ok: bool | None) -> str:
    return "-" if ok is None else "**met**" if ok else "**missed**"


@dataclass
class Target:
    what: str
    value: float | None
    limit: str
    ok: bool | None
    source: str


def at_most(what: str, value: float, limit: float, source: str, unit: str = "") -> Target:
    """A target met when ``value`` is at most ``limit`` (shown as ``≤ LIMIT`` and ``unit``)."""
    return Target(what, value, f"≤ {limit}{unit}", value <= limit, source)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Report:
    results: str
    out: str
    doc: str
    save: bool = True
    loaded: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def load(self) -> None:
        for rel in SOURCES:
            path = os.path.join(self.results, rel)
            if not os.path.exists(path):
                self.missing.append(rel)
                continue
            try:
                with open(path) as f:
                    data = json.load(f)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                self.loaded[rel] = data
            except (OSError, ValueError) as exc:
                self.errors.append(f"{rel}: cannot read: {exc}")

    def get(self, rel: str) -> dict[str, Any] | None:
        return self.loaded.get(rel)

    def image(self, fig: Any, name: str, alt: str) -> str:
        """Save a figure as ``NAME.png`` in the output directory; the markdown that shows it."""
        import matplotlib.pyplot as plt

        path = os.path.join(self.out, f"{name}.png")
        if self.save:
            os.makedirs(self.out, exist_ok=True)
            fig.tight_layout()
            fig.savefig(path, dpi=100, metadata={"Software": None})
            self.images.append(path)
        plt.close(fig)
        rel = os.path.relpath(path, os.path.dirname(os.path.abspath(self.doc)))
        return f"![{alt}]({rel})"

    def provenance(self, rel: str) -> str:
        d = self.loaded[rel]
        bits = [f"`{self.shown(rel)}`"]
        if d.get("started"):
            bits.append(f"run {d['started']}")
        if d.get("command"):
            bits.append(f"`{d['command']}`")
        m = d.get("machine")
        if isinstance(m, dict) and m.get("cpus"):
            bits.append(f"{m['cpus']} cores, Python {m.get('python', '?')}")
        elif d.get("cpus"):
            bits.append(f"{d['cpus']} cores")
        return "Source: " + ", ".join(bits) + "."

    def shown(self, rel: str) -> str:
        """A result file's path as the doc and messages show it (repo-relative when it can be)."""
        path = os.path.abspath(os.path.join(self.results, rel))
        return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path

    def missing_text(self, rel: str) -> str:
        return f"_Missing: `{self.shown(rel)}` does not exist; `{SOURCES[rel]}` writes it._"


def figure(width: float = 8, height: float = 4, ncols: int = 1, nrows: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)


def grouped_bars(
    ax: Any,
    groups: list[str],
    series: dict[str, list[float]],
    *,
    colors: dict[str, str] | None = None,
    label: Callable[[float], str] | None = None,
) -> float:
    """One cluster of bars per group, one bar per series (legend = series names); the bar width."""
    w = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [j + i * w for j in range(len(groups))]
        ax.bar(xs, values, w, label=name, color=(colors or {}).get(name))
        if label:
            for x, v in zip(xs, values, strict=False):
                ax.annotate(label(v), (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks([j + w * (len(series) - 1) / 2 for j in range(len(groups))], groups)
    return w


def finish(
    ax: Any,
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    xlog: bool = False,
    ylog: bool = False,
    ylim: tuple[float, float] | None = None,
    grid: str | None = None,
    legend: dict[str, Any] | None = None,
) -> None:
    """The dressing of one plot: log scales, y limits, labels, title, a light grid (on ``grid``: "x", "y"
    or "both") and a legend (``legend`` holds its keyword arguments)."""
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if grid:
        ax.grid(axis=grid, alpha=0.3, which="both")
    if legend is not None:
        ax.legend(**legend)


LINE_STYLES = ("-o", "--s", "-^", "--v")


def lines(ax: Any, xs: list[float], series: dict[str, list[Any]]) -> None:
    """One line per named series (legend = the names), marked -o, --s, -^, --v in turn."""
    for i, (label, ys) in enumerate(series.items()):
        ax.plot(xs, ys, LINE_STYLES[i % len(LINE_STYLES)], label=label)


def hbars(
    ax: Any,
    labels: list[str],
    p50: list[float],
    p99: list[float] | None,
    unit: str = "ms",
    log: bool = True,
    colors: list[str] | None = None,
    title: str | None = None,
) -> None:
    """Horizontal bars at p50 with a tick at p99, top to bottom in the order given."""
    y = list(range(len(labels)))[::-1]
    ax.barh(y, p50, color=colors or "#4c72b0", label="p50")
    if p99:
        ax.scatter(p99, y, marker="|", s=300, color="black", label="p99", zorder=3)
    for yi, v in zip(y, p50, strict=False):
        ax.annotate(f" {num(v)}", (v, yi), va="center", fontsize=8)
    ax.set_yticks(y, labels)
    finish(ax, xlog=log, xlabel=unit, title=title, grid="x")


def lat(d: dict[str, Any] | None, key: str = "p50_ms") -> float | None:
    return None if not d else d.get(key)


# -- sections ------------------------------------------------------------------------------------


def needs(rel: str) -> Callable[[Callable[[Report, dict[str, Any], str], str]], Callable[[Report], str]]:
    """A section drawn from the result file ``rel``: called with its data and ``rel``, or, when the
    file is missing, says so instead."""

    def wrap(fn: Callable[[Report, dict[str, Any], str], str]) -> Callable[[Report], str]:
        @functools.wraps(fn)
        def section(r: Report) -> str:
            d = r.get(rel)
            return r.missing_text(rel) if d is None else fn(r, d, rel)

        return section

    return wrap


STORE_COLORS = {"sqlite": "#999999", "file": "#4c72b0", "s3": "#dd8452", "s3_boto3": "#c44e52", "azure": "#55a868"}


def storage_backends(d: dict[str, Any]) -> str:
    """Durable put and seal + ship per object-store backend, naming the client each went through.

    Results without a ``clients`` key predate the obstore switch: their S3 rows went through boto3."""
    kv = d["kv_put"]
    clients = d.get("clients") or {"file": "FileStore", "s3": "boto3"}
    backends = [
        ("file store (local directory)", "file", "durable_file", "segment_seal_ship_file"),
        ("S3 on MinIO", "s3", "durable_s3", "segment_seal_ship_s3"),
        ("S3 on MinIO, comparison row", "s3_boto3", "durable_s3_boto3", None),
        ("Azure Blob on Azurite", "azure", "durable_azure", "segment_seal_ship_azure"),
    ]
    rows: list[list[Any]] = []
    for label, client, put_key, ship_key in backends:
        put, ship = kv.get(put_key), d.get(ship_key) if ship_key else None
        if put is None and ship is None:
            continue
        rows.append(
            [
                label,
                clients.get(client, "-"),
                *((put["n"], put["p50_ms"], put["p99_ms"]) if put else ("-", "-", "-")),
                *((ship["n"], ship["p50_ms"], ship["p99_ms"]) if ship else ("not run", "-", "-")),
            ]
        )
    notes = []
    for key, label, client in (
        ("gcs", "GCS on fake-gcs-server", "obstore"),
        ("azure", "Azure Blob on Azurite", "obstore"),
    ):
        x = d.get(key)
        if isinstance(x, dict) and not (x.get("measurable", True) and x.get("measured", True)):
            reason = str(x.get("reason", ""))
            short = "not measurable: emulator gap" if reason.startswith("emulator gap") else "not measured"
            rows.append([label, client, short, "-", "-", short, "-", "-"])
            notes.append(f"{label}: {reason}.")
    table = md_table(
        ["backend", "client", "durable put n", "p50 ms", "p99 ms", "seal + ship n", "p50 ms", "p99 ms"], rows
    )
    return table + ("\n\n" + "\n\n".join(notes) if notes else "")


@needs("storage.json")
def sec_storage(r: Report, d: dict[str, Any], rel: str) -> str:
    plain, kv = d["plain_sqlite_commit"], d["kv_put"]
    rows: list[tuple[str, dict[str, Any], str]] = [
        ("plain SQLite commit, WAL, synchronous=FULL", plain["wal_full"], "sqlite"),
        ("plain SQLite commit, WAL, synchronous=NORMAL", plain["wal_normal"], "sqlite"),
        ("Memoturn KV put, standard, file store", kv["standard_file"], "file"),
        ("Memoturn KV put, standard, S3 (MinIO)", kv["standard_s3"], "s3"),
        ("Memoturn KV put, durable, file store", kv["durable_file"], "file"),
        ("Memoturn KV put, durable, S3 (MinIO)", kv["durable_s3"], "s3"),
    ]
    for key, label, color in (
        ("durable_s3_boto3", "Memoturn KV put, durable, S3 (MinIO), boto3 client (comparison)", "s3_boto3"),
        ("durable_azure", "Memoturn KV put, durable, Azure (Azurite)", "azure"),
    ):
        if key in kv:
            rows.append((label, kv[key], color))
    other: list[tuple[str, dict[str, Any]]] = []
    for key, label in (
        ("segment_seal_ship_file", "segment seal + ship, file store"),
        ("segment_seal_ship_s3", "segment seal + ship, S3"),
        ("segment_seal_ship_azure", "segment seal + ship, Azure (Azurite)"),
        ("create_database_file", "create database, file store"),
        ("create_database_s3", "create database, S3"),
        ("cold_wake_1mb_file", "cold wake, 1 MB, file store"),
        ("cold_wake_1mb_s3", "cold wake, 1 MB, S3"),
        ("cold_wake_100mb_file", "cold wake, {megabytes} MB, file store"),
    ):
        if key in d:
            other.append((label.format(**d[key]), d[key]))
    table = md_table(
        ["operation", "n", "p50 ms", "p99 ms", "ops/s"],
        [[label, s["n"], s["p50_ms"], s["p99_ms"], s.get("ops_per_s")] for label, s in [x[:2] for x in rows] + other],
    )
    parts = [table]
    if "restore_s3" in d:
        x = d["restore_s3"]
        parts.append(
            md_table(
                ["restore from S3 (segment chain, no snapshot)", "txids", "segments", "MB", "p50 s", "MB/s", "txids/s"],
                [
                    [
                        "replay into an empty file",
                        x["txids"],
                        x["segments"],
                        x["megabytes"],
                        x["seconds_p50"],
                        x["mb_per_s"],
                        x["txids_per_s"],
                    ]
                ],
            )
        )
    parts.append(storage_backends(d))
    fig, ax = figure(8, 3.6 + 0.3 * max(0, len(rows) - 6))
    hbars(
        ax[0][0],
        [lbl.replace("Memoturn KV put, ", "") for lbl, _, _ in rows],
        [s["p50_ms"] for _, s, _ in rows],
        [s["p99_ms"] for _, s, _ in rows],
        colors=[STORE_COLORS[c] for _, _, c in rows],
        title="One-row commit: p50 (bar), p99 (tick)",
    )
    parts.append(r.image(fig, "storage-write-path", "write path latency vs plain SQLite"))
    if other:
        fig, ax = figure(8, 3.2)
        hbars(
            ax[0][0],
            [lbl for lbl, _ in other],
            [s["p50_ms"] for _, s in other],
            [s["p99_ms"] for _, s in other],
            title="Create, cold wake, seal + ship: p50 (bar) and p99 (tick)",
        )
        parts.append(r.image(fig, "storage-wake-create", "create, cold wake and shipping latency"))
    t = d.get("targets") or {}
    if t:
        r.targets += [
            at_most(
                "standard put p50 / plain SQLite (WAL, FULL) commit p50",
                t["standard_put_p50_over_sqlite_full_p50"],
                t["standard_put_target_ratio"],
                rel,
                "×",
            ),
            at_most("durable put p50, S3 (MinIO), ms", t["durable_put_s3_p50_ms"], t["durable_put_target_ms"], rel),
            at_most(
                "cold wake 1 MB p50, file store, ms", t["cold_wake_1mb_file_p50_ms"], t["cold_wake_target_ms"], rel
            ),
            at_most(
                "create database p50, file store, ms", t["create_database_file_p50_ms"], t["create_target_ms"], rel
            ),
        ]
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


def _target_number(text: str) -> float | None:
    found = re.findall(r"\d+(?:\.\d+)?", str(text))
    return float(found[-1]) if found else None


@needs("cluster.json")
def sec_cluster(r: Report, d: dict[str, Any], rel: str) -> str:
    parts = []
    g = d.get("gateway_overhead_kv_get")
    rows: list[list[Any]] = []
    if g:
        rows += [
            ["KV get, straight to the node", g["direct"]["n"], g["direct"]["p50_ms"], g["direct"]["p99_ms"]],
            ["KV get, through the gateway", g["gateway"]["n"], g["gateway"]["p50_ms"], g["gateway"]["p99_ms"]],
            ["gateway overhead", None, g["overhead_p50_ms"], g["overhead_p99_ms"]],
        ]
    if d.get("replica_lag"):
        x = d["replica_lag"]
        rows.append(
            ["replica lag (ack of a standard write → replica holds its txid)", x["n"], x["p50_ms"], x["p99_ms"]]
        )
    if rows:
        parts.append(md_table(["measure", "n", "p50 ms", "p99 ms"], rows))
    fo = [
        (k, label)
        for k, label in (
            ("failover_kill9_seconds", "owner killed (SIGKILL): lease expiry"),
            ("failover_sigterm_seconds", "owner stopped (SIGTERM): lease released"),
        )
        if k in d
    ]
    ttl = d.get("lease_ttl_seconds")
    frows = []
    for k, label in fo:
        x = d[k]
        limit = _target_number(x.get("target", ""))
        ok = x["max"] <= limit if limit is not None else None
        frows.append(
            [label, ", ".join(num(s) for s in x["samples"]), x["p50"], x["max"], x.get("target", "-"), met(ok)]
        )
        r.targets.append(
            Target(f"failover, {label}, max s (lease TTL {ttl} s)", x["max"], str(x.get("target", "-")), ok, rel)
        )
    if frows:
        parts.append(md_table(["failover", "samples s", "p50 s", "max s", "target s", ""], frows))
    e2e = r.get("e2e.json")
    if fo or e2e:
        labels, values, limits = [], [], []
        for k, label in fo:
            labels.append(label.split(":")[0] + f"\n(bench.cluster, TTL {ttl} s)")
            values.append(d[k]["p50"])
            limits.append(_target_number(d[k].get("target", "")))
        if e2e:
            for k, label in (
                ("failover_graceful_delete_seconds", "pod deleted gracefully"),
                ("failover_force_delete_operator_up_seconds", "pod force-deleted, operator up"),
                ("failover_force_delete_operator_down_seconds", "pod force-deleted, operator down"),
            ):
                if isinstance(e2e.get(k), (int, float)):
                    labels.append(f"{label}\n(Kubernetes e2e, TTL {e2e.get('lease_ttl_seconds', '?')} s)")
                    values.append(e2e[k])
                    limits.append(None)
        fig, ax = figure(8, 0.7 * len(labels) + 1.2)
        hbars(
            ax[0][0],
            labels,
            values,
            None,
            unit="seconds",
            log=False,
            title="Failover: write unavailability (p50 for bench.cluster; red = target)",
        )
        y = list(range(len(labels)))[::-1]
        for yi, lim in zip(y, limits, strict=False):
            if lim is not None:
                ax[0][0].plot([lim, lim], [yi - 0.4, yi + 0.4], color="red", lw=2)
        parts.append(r.image(fig, "cluster-failover", "failover times"))
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


@needs("e2e.json")
def sec_e2e(r: Report, d: dict[str, Any], rel: str) -> str:
    rows = [[k.replace("_", " "), v] for k, v in d.items() if k not in ("started", "command", "machine")]
    return md_table(["measure", "value"], rows) + "\n\n" + r.provenance(rel)


# Issue 15's targets: ops/s through the gateway at 32 in flight, with the p99 each must stay within.
THROUGHPUT_TARGETS = {"kv_mix": 1500.0, "memory_write": 400.0}
THROUGHPUT_P99_MS = {"kv_mix": 50, "memory_write": 100}
DIRECT_KV_PUT_TARGET = 1000.0  # ops/s straight to the node
SQLITE_FLOOR_SHARE = 1 / 3  # direct KV put against plain SQLite FULL commits measured in the same run
GATEWAY_OVERHEAD_MS = 0.5  # KV GET p50 through the gateway minus straight to the node, same run


def _throughput_targets(d: dict[str, Any], rel: str) -> list[Target]:
    """Issue 15's targets beyond the gateway rates: direct puts, against the SQLite floor, gateway overhead."""
    out = []
    put, floor = d.get("direct_kv_put"), d.get("plain_sqlite_full")
    if put:
        out.append(
            Target(
                "direct KV put (straight to the node), ops/s",
                put["ops_per_s"],
                f"≥ {DIRECT_KV_PUT_TARGET:,.0f}",
                put["ops_per_s"] >= DIRECT_KV_PUT_TARGET,
                rel,
            )
        )
    if put and floor:
        share = put["ops_per_s"] / floor["ops_per_s"]
        out.append(
            Target(
                f"direct KV put / plain SQLite FULL commits in the same run ({num(floor['ops_per_s'])}/s)",
                round(share, 3),
                f"≥ {SQLITE_FLOOR_SHARE:.2f}",
                share >= SQLITE_FLOOR_SHARE,
                rel,
            )
        )
    direct, gateway = d.get("direct_kv_get"), d.get("gateway_kv_get")
    if direct and gateway:
        out.append(
            at_most(
                "gateway overhead: KV GET p50 through the gateway minus direct, same run, ms",
                round(gateway["p50_ms"] - direct["p50_ms"], 3),
                GATEWAY_OVERHEAD_MS,
                rel,
            )
        )
    direct1, gateway1 = d.get("direct_kv_get_1"), d.get("gateway_kv_get_1")
    if direct1 and gateway1:
        out.append(
            at_most(
                "gateway overhead with one request in flight (nothing queues): KV GET p50 through the gateway "
                "minus direct, same run, ms",
                round(gateway1["p50_ms"] - direct1["p50_ms"], 3),
                GATEWAY_OVERHEAD_MS,
                rel,
            )
        )
    return out


@needs("throughput.json")
def sec_throughput(r: Report, d: dict[str, Any], rel: str) -> str:
    phases = [k for k in d if isinstance(d[k], dict) and "ops_per_s" in d[k] and "_" in k]
    rows = []
    for k in phases:
        where, phase = k.split("_", 1)
        x = d[k]
        errs = sum((x.get("errors") or {}).values()) if isinstance(x.get("errors"), dict) else x.get("errors")
        cpu = [x.get(f"{who}_cpu_ms_per_op") for who in ("node", "gateway", "store", "load")]
        rows.append([where, phase, x["ops_per_s"], x["p50_ms"], x.get("p95_ms"), x["p99_ms"], errs, *cpu])
    parts = [
        md_table(
            [
                "path",
                "phase",
                "ops/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
                "CPU ms/op: node",
                "gateway",
                "object store",
                "load generator",
            ],
            rows,
        )
    ]
    for phase, floor in THROUGHPUT_TARGETS.items():
        x = d.get(f"gateway_{phase}")
        limit = THROUGHPUT_P99_MS[phase]
        if x:
            r.targets.append(
                Target(
                    f"{phase.replace('_', ' ')} through the gateway, ops/s",
                    x["ops_per_s"],
                    f"≥ {floor:,.0f}",
                    x["ops_per_s"] >= floor,
                    rel,
                )
            )
            r.targets.append(at_most(f"{phase.replace('_', ' ')} through the gateway, p99 ms", x["p99_ms"], limit, rel))
        runs = [{"concurrency": d.get("concurrency"), **x} if x else None for x in [d.get(f"gateway_{phase}")]] + (
            d.get("gateway_sweep") or {}
        ).get(phase, [])
        within = [x for x in runs if x and x["p99_ms"] <= limit]
        if d.get("gateway_sweep"):
            best = max(within, key=lambda x: x["ops_per_s"]) if within else None
            r.targets.append(
                Target(
                    f"{phase.replace('_', ' ')} through the gateway with p99 ≤ {limit} ms, ops/s (best of "
                    f"{', '.join(str(x['concurrency']) for x in runs if x)} in flight"
                    + (
                        f"; at {best['concurrency']}: p99 {num(best['p99_ms'])} ms)"
                        if best
                        else f"; none within {limit} ms)"
                    ),
                    best["ops_per_s"] if best else None,
                    f"≥ {floor:,.0f}",
                    bool(best and best["ops_per_s"] >= floor),
                    rel,
                )
            )
    r.targets += _throughput_targets(d, rel)
    sweep = d.get("gateway_sweep") or {}
    if sweep:
        rows = [
            [
                phase,
                x["concurrency"],
                x["ops_per_s"],
                x["p50_ms"],
                x.get("p95_ms"),
                x["p99_ms"],
                sum((x.get("errors") or {}).values()),
            ]
            for phase, xs in sweep.items()
            for x in xs
        ]
        parts.append(
            "Through the gateway at lower concurrency (a closed loop's p99 grows with what it keeps in flight):"
        )
        parts.append(md_table(["phase", "in flight", "ops/s", "p50 ms", "p95 ms", "p99 ms", "errors"], rows))
    if phases:
        names = sorted(
            {k.split("_", 1)[1] for k in phases}, key=lambda p: [k.split("_", 1)[1] for k in phases].index(p)
        )
        wheres = sorted({k.split("_", 1)[0] for k in phases})
        fig, ax = figure(8, 3.6)
        a = ax[0][0]
        w = grouped_bars(
            a, names, {where: [d.get(f"{where}_{n}", {}).get("ops_per_s", 0) for n in names] for where in wheres}
        )
        for j, n in enumerate(names):
            if n in THROUGHPUT_TARGETS:
                a.plot([j - w / 2, j + w * (len(wheres) - 0.5)], [THROUGHPUT_TARGETS[n]] * 2, color="red", lw=2)
        finish(
            a,
            ylabel="ops/s",
            title=f"Throughput, {d.get('concurrency', '?')} requests in flight (red = target)",
            legend={},
        )
        parts.append(r.image(fig, "throughput", "throughput, direct and through the gateway"))
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


@needs("loadtest/summary.json")
def sec_loadtest(r: Report, d: dict[str, Any], rel: str) -> str:
    ops = d.get("operations", {})
    rows = [
        [name, o["requests"], o["failures"], o["rps"], o["p50_ms"], o["p95_ms"], o["p99_ms"]] for name, o in ops.items()
    ]
    rows.append(["**all**", d["requests"], d["failures"], d["throughput_rps"], d["p50_ms"], d["p95_ms"], d["p99_ms"]])
    parts = [
        f"{d.get('users', '?')} users for {d.get('duration', '?')} against {d.get('nodes', '?')} node(s), "
        f"{d.get('profiles', '?')} profiles, {d.get('durability', '?')} writes; error rate {num(d.get('error_rate'))}.",
        md_table(["operation", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms"], rows),
    ]
    if ops:
        fig, ax = figure(8, 0.45 * len(ops) + 1.4)
        hbars(
            ax[0][0],
            list(ops),
            [max(o["p50_ms"], 0.01) for o in ops.values()],
            [o["p99_ms"] for o in ops.values()],
            title="Locust: latency per operation, p50 (bar) and p99 (tick)",
        )
        parts.append(r.image(fig, "loadtest", "load test latency per operation"))
    parts.append(
        f"Source: `{r.shown(rel)}`" + (f", run {d['started']}" if d.get("started") else "") + ", `make loadtest`."
    )
    return "\n\n".join(parts)


@needs("memory.json")
def sec_memory(r: Report, d: dict[str, Any], rel: str) -> str:
    sizes = sorted(int(k.split("_", 1)[1]) for k in d if re.fullmatch(r"recall_\d+", k))
    rows = []
    for n in sizes:
        x = d[f"recall_{n}"]
        rows.append(
            [
                n,
                x["with_embedding"]["p50_ms"],
                x["with_embedding"]["p99_ms"],
                x["search_only"]["p50_ms"],
                x["search_only"]["p99_ms"],
                x.get("load_memories_per_s"),
            ]
        )
    parts = [
        md_table(
            [
                "memories in the profile",
                "recall p50 ms",
                "recall p99 ms",
                "search only p50 ms",
                "search only p99 ms",
                "bulk load memories/s (own vectors)",
            ],
            rows,
        )
    ]
    if "recall_10000" in d:
        x = d["recall_10000"]["with_embedding"]
        r.targets.append(
            at_most(f"recall p99 at 10,000 memories (query embedded, n={x['n']}), ms", x["p99_ms"], 50, rel)
        )
    ing = d.get("ingest_with_embedding")
    if ing:
        r.targets.append(  # issue 15: reported; ≥ 2× once a faster runtime runs the same weights offline
            Target(
                f"server-side embedding ({d.get('embedder', 'default model')}), memories embedded and written/s",
                ing["memories_per_s"],
                "reported (≥ 2× with a faster runtime, same recall)",
                None,
                rel,
            )
        )
        parts.append(
            f"Ingest with server-side embedding: {num(ing['memories_per_s'])} memories/s "
            f"({ing['memories']} memories in batches of {ing['batch']})."
        )
    if sizes:
        fig, ax = figure(7, 3.6)
        a = ax[0][0]
        for kind, style in (("with_embedding", "-o"), ("search_only", "--s")):
            for q, c in (("p50_ms", "#4c72b0"), ("p99_ms", "#dd8452")):
                a.plot(
                    sizes,
                    [d[f"recall_{n}"][kind][q] for n in sizes],
                    style,
                    color=c,
                    label=f"{kind.replace('_', ' ')} {q[:3]}",
                )
        finish(
            a,
            xlog=True,
            xlabel="memories in the profile",
            ylabel="ms",
            title="Hybrid recall latency by profile size",
            grid="both",
            legend={"fontsize": 8},
        )
        parts.append(r.image(fig, "memory-recall-by-size", "recall latency by profile size"))
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


FORK_P50_MS = {"file": 1.0, "s3": 5.0}


@needs("branching.json")
def sec_branching(r: Report, d: dict[str, Any], rel: str) -> str:
    rows, bars = [], []
    for store in ("file", "s3"):
        x = d.get(f"forks_{store}")
        if x:
            for k, label in (("fork", "fork"), ("first_read_on_fork", "first read on the fork")):
                rows.append([f"{label}, {store} store", x[k]["n"], x[k]["p50_ms"], x[k]["p99_ms"]])
                bars.append((f"{label}, {store}", x[k]))
            limit = FORK_P50_MS[store]  # issue 5: a fork is one manifest write
            where = "file store" if store == "file" else "S3 (MinIO on loopback)"
            r.targets.append(at_most(f"fork p50, {where}, ms", x["fork"]["p50_ms"], limit, rel))
    for k, x in sorted((d.get("pitr_restore_s3") or {}).items(), key=lambda kv: int(kv[0])):
        rows.append(
            [
                f"point-in-time restore at txid ~{k}, S3 ({x.get('segments')} segments, "
                f"{x.get('snapshots')} snapshots)",
                x["n"],
                x["p50_ms"],
                x["p99_ms"],
            ]
        )
        bars.append((f"PITR, {k} txids, S3", x))
    parts = [md_table(["operation", "n", "p50 ms", "p99 ms"], rows)]
    gc = d.get("gc_pass_s3")
    if gc:
        parts.append(
            md_table(
                ["GC pass, S3", "objects", "seconds", "unreferenced"],
                [
                    [f"after {k} txids", x["objects"], x["seconds"], x["unreferenced"]]
                    for k, x in sorted(gc.items(), key=lambda kv: int(kv[0]))
                ],
            )
        )
    if bars:
        fig, ax = figure(8, 0.45 * len(bars) + 1.4)
        hbars(
            ax[0][0],
            [b for b, _ in bars],
            [x["p50_ms"] for _, x in bars],
            [x["p99_ms"] for _, x in bars],
            title="Branching: p50 (bar) and p99 (tick)",
        )
        parts.append(r.image(fig, "branching", "fork, first read and PITR latency"))
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


@needs("recall.json")
def sec_recall(r: Report, d: dict[str, Any], rel: str) -> str:
    rows = [
        [f"category {c}", x["questions"], *map(q4, (x["r5"], x["r10"], x["hit5"], x["mrr"]))]
        for c, x in sorted(d["per_category"].items())
    ]
    rows.append(["**all**", d["questions"], *map(q4, (d["r_at_5"], d["r_at_10"], d["hit_at_5"], d["mrr"]))])
    parts = [
        f"{d['conversations']} conversations, {num(d['turns'])} turns, embedder {d['embedder']}. "
        f"Ingest {num(d['ingest_ms_per_turn'])} ms per turn (embedding included); recall "
        f"p50 {num(d['recall_p50_ms'])} ms, p95 {num(d['recall_p95_ms'])} ms (query embedding included).",
        md_table(["questions", "n", "R@5", "R@10", "Hit@5", "MRR"], rows),
        f"Source: `{r.shown(rel)}`, `make bench-recall`.",
    ]
    return "\n\n".join(parts)


@needs("peers-sqlite-vec.json")
def sec_sqlite_vec(r: Report, d: dict[str, Any], rel: str) -> str:
    systems = d["systems"]
    names = [n for n in ("memoturn", "sqlite-vec") if n in systems] + [
        n for n in systems if n not in ("memoturn", "sqlite-vec")
    ]
    rows = []
    for key, label in (("r_at_5", "R@5"), ("r_at_10", "R@10"), ("hit_at_5", "Hit@5"), ("mrr", "MRR")):
        rows.append([label] + [q4(systems[n][key]) for n in names])
    cats = sorted({c for n in names for c in systems[n]["per_category"]})
    for c in cats:
        for k, label in (("r5", "R@5"), ("r10", "R@10")):
            rows.append(
                [f"category {c} {label} (n = {systems[names[0]]['per_category'].get(c, {}).get('questions', '-')})"]
                + [q4(systems[n]["per_category"].get(c, {}).get(k)) for n in names]
            )
    quality = md_table(["LoCoMo"] + names, rows)
    lrows = []
    for label, get in (
        ("ingest ms per memory: embed + store", lambda s: s["ingest_ms_per_memory"]["total"]),
        ("ingest ms per memory: store only", lambda s: s["ingest_ms_per_memory"]["store"]),
        ("store ms per 64-memory transaction, p50", lambda s: s["ingest_store_per_batch"]["p50_ms"]),
        ("store ms per 64-memory transaction, p99", lambda s: s["ingest_store_per_batch"]["p99_ms"]),
    ):
        lrows.append([label] + [get(systems[n]) for n in names])
    for kind, label in (
        ("search_only", "recall, search only"),
        ("with_embedding", "recall, with query embedding"),
        ("embedding_only", "query embedding alone"),
    ):
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            lrows.append([f"{label}, {q[:3]} ms"] + [systems[n]["recall_latency"][kind][q] for n in names])
    lrows.append(
        ["load average (1 min) when the system's run started"] + [systems[n].get("loadavg_1m_at_start") for n in names]
    )
    latency = md_table(["latency"] + names, lrows)
    sv = d.get("sqlite_vec", {})
    parts = [
        f"{d['conversations']} conversations, {num(d.get('turns'))} turns, {num(d.get('questions'))} questions; "
        f"embedder {d['embedder']} (one object, both systems); sqlite-vec {sv.get('version', '?')} on SQLite "
        f"{sv.get('sqlite', '?')} ({sv.get('driver', '?')}); order of the runs: {', '.join(d.get('order', []))}."
        + (
            f" vec0's top 10 equalled numpy's exact cosine top 10 for "
            f"{systems['sqlite-vec']['knn_top10_equals_numpy_exact']} questions."
            if "knn_top10_equals_numpy_exact" in systems.get("sqlite-vec", {})
            else ""
        ),
        quality,
        latency,
    ]
    colors = {"memoturn": "#4c72b0", "sqlite-vec": "#55a868"}
    fig, ax = figure(10, 3.8, ncols=2)
    a = ax[0][0]
    metrics = [("r_at_5", "R@5"), ("r_at_10", "R@10"), ("hit_at_5", "Hit@5"), ("mrr", "MRR")]
    grouped_bars(
        a,
        [m for _, m in metrics],
        {n: [systems[n][k] for k, _ in metrics] for n in names},
        colors=colors,
        label=lambda v: f"{v:.2f}",
    )
    finish(a, ylim=(0, 1), title="LoCoMo, all questions", legend={"fontsize": 8})
    a = ax[0][1]
    grouped_bars(
        a,
        [f"cat {c}" for c in cats],
        {n: [systems[n]["per_category"].get(c, {}).get("r10", 0) for c in cats] for n in names},
        colors=colors,
    )
    finish(a, ylim=(0, 1), title="R@10 by question category")
    parts.append(r.image(fig, "recall-vs-sqlite-vec", "LoCoMo recall, Memoturn vs sqlite-vec"))
    fig, ax = figure(10, 3.6, ncols=2)
    for a, kind, title in (
        (ax[0][0], "search_only", "Recall, search only"),
        (ax[0][1], "with_embedding", "Recall, with query embedding"),
    ):
        qs = ["p50_ms", "p95_ms", "p99_ms"]
        grouped_bars(
            a,
            [q[:3] for q in qs],
            {n: [systems[n]["recall_latency"][kind][q] for q in qs] for n in names},
            colors=colors,
            label=num,
        )
        finish(a, ylabel="ms", title=title)
    ax[0][0].legend(fontsize=8)
    parts.append(r.image(fig, "recall-latency-vs-sqlite-vec", "recall latency, Memoturn vs sqlite-vec"))
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


@needs("peers-litestream.json")
def sec_litestream(r: Report, d: dict[str, Any], rel: str) -> str:
    runs = d["runs"]
    rows, rrows = [], []
    for name, x in runs.items():
        rep, obs = x.get("lag_reported") or {}, x.get("lag_observed") or {}
        rows.append(
            [
                name,
                x.get("paced", {}).get("commits"),
                rep.get("p50_ms"),
                rep.get("p99_ms"),
                rep.get("max_ms"),
                obs.get("p50_ms"),
                obs.get("p99_ms"),
                x.get("litestream_cpu_seconds_paced"),
                (x.get("bucket") or {}).get("megabytes"),
            ]
        )
        if x.get("durable_ack"):
            a = x["durable_ack"]
            rows.append(
                [f"{name}: durable write ack", a["n"], a["p50_ms"], a["p99_ms"], a["max_ms"], None, None, None, None]
            )
        if x.get("restore"):
            s = x["restore"]
            rrows.append(
                [
                    name,
                    s["rounds"],
                    s["seconds_p50"],
                    s.get("seconds_min"),
                    s.get("mb_per_s"),
                    s.get("plan_files"),
                    round(s["db_bytes"] / 1e6, 1),
                    s.get("verified"),
                ]
            )
    parts = [
        md_table(
            [
                "lag: commit → in the bucket",
                "commits",
                "reported p50 ms",
                "reported p99 ms",
                "reported max ms",
                "observed p50 ms",
                "observed p99 ms",
                "replicator CPU s (paced)",
                "bucket MB",
            ],
            rows,
        )
    ]
    if rrows:
        parts.append(
            md_table(["restore", "rounds", "p50 s", "min s", "MB/s", "files read", "database MB", "verified"], rrows)
        )
    names = list(runs)
    fig, ax = figure(10, 3.6, ncols=2)
    a = ax[0][0]
    qs = [
        ("lag_reported", "p50_ms"),
        ("lag_reported", "p99_ms"),
        ("lag_observed", "p50_ms"),
        ("lag_observed", "p99_ms"),
    ]
    grouped_bars(
        a,
        [f"{k.split('_')[1]}\n{q[:3]}" for k, q in qs],
        {n: [(runs[n].get(k) or {}).get(q, 0) for k, q in qs] for n in names},
    )
    finish(
        a, ylog=True, ylabel="ms", title="Lag: commit → in object storage", legend={"fontsize": 7, "loc": "upper left"}
    )
    a = ax[0][1]
    rest = [n for n in names if runs[n].get("restore")]
    a.bar(range(len(rest)), [runs[n]["restore"]["seconds_p50"] for n in rest], color="#4c72b0")
    for j, n in enumerate(rest):
        a.annotate(
            f"{runs[n]['restore']['seconds_p50']:.2f} s",
            (j, runs[n]["restore"]["seconds_p50"]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    a.set_xticks(range(len(rest)), [n.replace(" (", "\n(") for n in rest], fontsize=8)
    finish(a, ylabel="seconds", title="Restore of the whole database, p50")
    parts.append(r.image(fig, "litestream", "Litestream vs Memoturn: lag and restore"))
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


@needs("scale.json")
def sec_scale(r: Report, d: dict[str, Any], rel: str) -> str:
    stages = d["stages"]
    rows = []
    for s in stages:
        res = s["resources"]
        rows.append(
            [
                s.get("label", s["population"]),
                s["population"],
                round(res["rss_bytes"] / MiB),
                round(res["rss_peak_bytes"] / MiB),
                res["open_fds"],
                s["create"]["p50_ms"],
                s["create"]["p99_ms"],
                s["create"].get("bulk_rate_per_s"),
                s["touch"]["p50_ms"],
                s["hot_read"]["p50_ms"],
                s["hot_read"]["p99_ms"],
                (s.get("cold_wake") or {}).get("p50_ms"),
                (s.get("cold_wake") or {}).get("p99_ms"),
                round(res["store_dir"]["bytes"] / MiB),
            ]
        )
    setup = d.get("setup", {})
    parts = [
        f"One memoturnd over HTTP on loopback, {setup.get('store', '?')} store "
        f"(fsync {'on' if setup.get('file_store_fsync') else 'off' if setup.get('file_store_fsync') is False else '-'}), "
        f"hot budget {setup.get('max_hot', '?')}, warm (disk) budget "
        f"{num((setup.get('max_disk_bytes') or 0) / MiB)} MiB, {setup.get('client_threads', '?')} client threads; "
        f"baseline RSS {num(d['baseline']['rss_bytes'] / MiB)} MiB.",
        md_table(
            [
                "stage",
                "databases",
                "RSS MiB",
                "peak RSS MiB",
                "open fds",
                "create p50 ms",
                "create p99 ms",
                "bulk creates/s",
                "touch p50 ms",
                "hot read p50 ms",
                "hot read p99 ms",
                "cold wake p50 ms",
                "cold wake p99 ms",
                "store MiB",
            ],
            rows,
        ),
    ]
    growth = d.get("growth") or {}
    if growth:
        keys = [
            "rss_mib",
            "rss_peak_mib",
            "open_fds",
            "create_p50_ms",
            "touch_p50_ms",
            "hot_read_p50_ms",
            "cold_wake_p50_ms",
            "rss_bytes_per_extra_database_created",
        ]
        parts.append(md_table(["growth"] + keys, [[k] + [g.get(x) for x in keys] for k, g in growth.items()]))
    t = d.get("target")
    if t:
        r.targets.append(
            Target(
                f"peak RSS with {t['population']:,} databases, MiB",
                round(t["rss_peak_bytes"] / MiB),
                f"≤ {t['target_rss_bytes'] / MiB:,.0f}",
                bool(t["met"]),
                rel,
            )
        )
    if stages:
        pops = [s["population"] for s in stages]
        fig, ax = figure(10, 6.4, ncols=2, nrows=2)
        a = ax[0][0]
        lines(
            a,
            pops,
            {
                "RSS (hot set held)": [s["resources"]["rss_bytes"] / MiB for s in stages],
                "peak RSS": [s["resources"]["rss_peak_bytes"] / MiB for s in stages],
            },
        )
        if t:
            a.axhline(t["target_rss_bytes"] / MiB, color="red", lw=1.5, label="target")
        finish(a, ylabel="MiB", title="Node memory", legend={"fontsize": 8})
        lines(
            ax[0][1],
            pops,
            {
                "create p50": [s["create"]["p50_ms"] for s in stages],
                "create p99": [s["create"]["p99_ms"] for s in stages],
                "touch p50 (concurrent)": [s["touch"]["p50_ms"] for s in stages],
            },
        )
        finish(ax[0][1], ylabel="ms", title="Create and first write", legend={"fontsize": 8})
        lines(
            ax[1][0],
            pops,
            {
                "hot read p50": [s["hot_read"]["p50_ms"] for s in stages],
                "hot read p99": [s["hot_read"]["p99_ms"] for s in stages],
                "cold wake p50": [(s.get("cold_wake") or {}).get("p50_ms") for s in stages],
                "cold wake p99": [(s.get("cold_wake") or {}).get("p99_ms") for s in stages],
            },
        )
        finish(ax[1][0], ylabel="ms", title="Reads", legend={"fontsize": 8})
        lines(
            ax[1][1],
            pops,
            {
                "open fds": [s["resources"]["open_fds"] for s in stages],
                "store MiB": [s["resources"]["store_dir"]["bytes"] / MiB for s in stages],
                "local cache MiB": [s["resources"]["cache_dir"]["bytes"] / MiB for s in stages],
            },
        )
        finish(ax[1][1], title="Descriptors and disk", legend={"fontsize": 8})
        for a in ax.flat:
            a.set_xscale("log")
            a.set_xticks(pops, [s.get("label", str(s["population"])) for s in stages])
            a.minorticks_off()
            finish(a, xlabel="databases in the population", grid="both")
        parts.append(r.image(fig, "scale-growth", "scale: growth with the number of databases"))
    parts.append(r.provenance(rel))
    return "\n\n".join(parts)


def sec_index(r: Report) -> str:
    rows = []
    for rel, cmd in SOURCES.items():
        d = r.loaded.get(rel)
        status = "present" if d is not None else "**missing**" if rel in r.missing else "**unreadable**"
        rows.append(
            [f"`{r.shown(rel)}`", status, (d or {}).get("started", "-"), f"`{(d or {}).get('command') or cmd}`"]
        )
    extra = (
        sorted(
            os.path.relpath(os.path.join(dp, f), r.results)
            for dp, _, fs in os.walk(r.results)
            for f in fs
            if f.endswith(".json") and os.path.relpath(os.path.join(dp, f), r.results) not in SOURCES
        )
        if os.path.isdir(r.results)
        else []
    )
    text = md_table(["result file", "status", "run", "command"], rows)
    if extra:
        text += "\n\nNot charted: " + ", ".join(f"`{e}`" for e in extra) + "."
    return text


def sec_targets(r: Report) -> str:
    if not r.targets:
        return "_No result file with targets is present._"
    return md_table(
        ["target", "measured", "limit", "", "source"],
        [[t.what, t.value, t.limit, met(t.ok), f"`{t.source}`"] for t in r.targets],
    )


@needs("replica.json")
def sec_replica(r: Report, d: dict[str, Any], rel: str) -> str:
    reads = d["reads"]
    read_rows = [
        [
            what,
            reads[f"{k}_local"]["p50_ms"],
            reads[f"{k}_local"]["p99_ms"],
            reads[f"{k}_gateway"]["p50_ms"],
            reads[f"{k}_gateway"]["p99_ms"],
        ]
        for k, what in (("kv_get", "KV get"), ("recall", f"recall, {num(reads['memories'])} memories"))
    ]
    sync_rows = []
    for n, x in sorted(((k, v) for k, v in d["sync"].items() if k.isdigit()), key=lambda kv: int(kv[0])):
        default, segments = x["default"], x["segments_only"]
        sync_rows.append(
            [
                num(int(n)),
                default["sync_ms"],
                "snapshot" if default["from_snapshot"] else "segments",
                round(default["bytes"] / 1024, 1),
                segments["sync_ms"],
                round(segments["bytes"] / 1024, 1),
                round(x["full_restore_bytes"] / 1024, 1),
            ]
        )
    parts = [
        "Reads answered by an embedded replica's local file against the same reads through the gateway (same run):",
        md_table(["read", "local p50 ms", "local p99 ms", "gateway p50 ms", "gateway p99 ms"], read_rows),
        "Sync after N new transactions (default: the snapshot when it moves fewer bytes than the segments):",
        md_table(
            ["new txns", "sync ms", "took", "KiB", "segments-only ms", "segments-only KiB", "full restore KiB"],
            sync_rows,
        ),
        f"Load average {num(d.get('load_average_at_start'))} at the start. Source: `{r.shown(rel)}`, "
        "`python -m bench.replica`.",
    ]
    return "\n\n".join(parts)


# Rendered in this order (targets last: the other sections collect them); the doc orders the blocks.
SECTIONS: dict[str, Callable[[Report], str]] = {
    "index": sec_index,
    "storage": sec_storage,
    "cluster": sec_cluster,
    "e2e": sec_e2e,
    "throughput": sec_throughput,
    "loadtest": sec_loadtest,
    "memory": sec_memory,
    "branching": sec_branching,
    "recall": sec_recall,
    "sqlite-vec": sec_sqlite_vec,
    "litestream": sec_litestream,
    "scale": sec_scale,
    "replica": sec_replica,
    "targets": sec_targets,
}


def render(r: Report) -> dict[str, str]:
    blocks: dict[str, str] = {}
    for name, fn in SECTIONS.items():
        try:
            blocks[name] = fn(r)
        except Exception as exc:  # an unexpected shape: say so in the doc and in the exit status
            r.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            blocks[name] = f"_Could not render this block from the results: {type(exc).__name__}: {exc}._"
    return blocks


def rewrite(text: str, blocks: dict[str, str]) -> tuple[str, list[str]]:
    """The document with every known marker block replaced; the names of blocks it lacks."""
    seen: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in blocks:
            return m.group(0)
        seen.add(name)
        return m.group(1) + blocks[name].rstrip() + "\n" + m.group(4)

    return MARKER.sub(sub, text), [n for n in blocks if n not in seen]


def skeleton() -> str:
    return "# Benchmarks\n\n" + "\n".join(
        f"## {name}\n\n<!-- figures:{name} -->\n<!-- /figures:{name} -->\n" for name in SECTIONS
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results"), help="directory of result JSON")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "img"), help="directory for the PNG plots")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"), help="markdown with figures blocks")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the doc's blocks are stale")
    args = p.parse_args(argv)
    r = Report(args.results, args.out, args.doc, save=not args.check)
    r.load()
    blocks = render(r)
    try:
        with open(args.doc) as f:
            text = f.read()
    except FileNotFoundError:
        text = skeleton()
    new, absent = rewrite(text, blocks)
    for rel in r.missing:
        print(f"missing: {r.shown(rel)} ({SOURCES[rel]})")
    for name in absent:
        print(f"warning: {args.doc} has no block <!-- figures:{name} -->")
    for e in r.errors:
        print(f"error: {e}", file=sys.stderr)
    if args.check:
        if new != text:
            print(f"{args.doc} is stale: run python -m bench.report", file=sys.stderr)
            return 1
        return 1 if r.errors else 0
    os.makedirs(os.path.dirname(os.path.abspath(args.doc)), exist_ok=True)
    with open(args.doc, "w") as f:
        f.write(new)
    for path in r.images:
        print(f"wrote {os.path.relpath(path)}")
    print(f"wrote {os.path.relpath(args.doc)} ({len(r.loaded)} result files, {len(r.missing)} missing)")
    return 1 if r.errors else 0


if __name__ == "__main__":
    sys.exit(main())
