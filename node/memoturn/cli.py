"""``memoturn``: the command line, over the Python SDK (:mod:`memoturn.client`).

Output is human-readable by default and JSON with ``--json``. Every failure prints one line
on stderr (the server's problem ``detail`` when there is one) and exits non-zero: 1 for an
error the server reported, 2 for bad usage, bad input or an unreachable server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from .client import Memoturn, MemoturnError


class CLIError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word is a string value


def _json_object(text: str | None, what: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{what} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise CLIError(f"{what} must be a JSON object")
    return value


def _progress(done: int, total: int | None, what: str) -> None:
    if not sys.stderr.isatty() and os.environ.get("MEMOTURN_PROGRESS") != "1":
        return
    if total:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{what} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    else:
        sys.stderr.write(f"\r{what} {done}")
    sys.stderr.flush()


def _out(args: argparse.Namespace, value: Any, human: str | None = None) -> None:
    if args.json or human is None:
        print(json.dumps(value, indent=2, sort_keys=True, default=str))
    else:
        print(human)


def _memory_line(m: dict[str, Any]) -> str:
    flag = "" if m.get("current", True) else " (superseded)"
    tags = f" [{', '.join(m['tags'])}]" if m.get("tags") else ""
    return f"{m['id']}  {m['type']:<11} {m['content']}{tags}{flag}"


def _iter_memories(profile: Any) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        page = profile.list(include_superseded=True, limit=1000, cursor=cursor)
        yield from page["memories"]
        cursor = page["next_cursor"]
        if not cursor:
            return


def _export(args: argparse.Namespace, mt: Memoturn) -> None:
    profile = mt.profile(args.namespace, args.profile)
    total = profile.stats()["memories"]
    out = open(args.out, "w") if args.out else sys.stdout
    n = 0
    try:
        for m in _iter_memories(profile):
            out.write(json.dumps(m, separators=(",", ":")) + "\n")
            n += 1
            _progress(n, total, "export")
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"exported {n} memories to {args.out}", file=sys.stderr)


_IMPORT_FIELDS = ("type", "content", "metadata", "tags", "subject", "event_time")


def _import(args: argparse.Namespace, mt: Memoturn) -> None:
    profile = mt.profile(args.namespace, args.profile)
    try:
        with open(args.file) as f:
            lines = [line for line in f if line.strip()]
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc.strerror}") from None
    items = []
    for number, line in enumerate(lines, 1):
        try:
            m = json.loads(line)
        except ValueError as exc:
            raise CLIError(f"{args.file}:{number}: not JSON ({exc}); nothing imported") from None
        if not isinstance(m, dict) or "content" not in m:
            raise CLIError(f"{args.file}:{number}: each line must be a memory object with 'content'; nothing imported")
        if m.get("current") is False:
            continue  # superseded history is exported for the record; import keeps current memories
        items.append({k: m[k] for k in _IMPORT_FIELDS if m.get(k) is not None})
    done = stored = 0
    for start in range(0, len(items), args.batch):
        chunk = items[start : start + args.batch]
        result = profile.add_many(chunk)
        stored += sum(1 for s in result["memories"] if not s["duplicate"])
        done += len(chunk)
        _progress(done, len(items), "import")
    _out(
        args,
        {"read": len(lines), "imported": stored, "duplicates": done - stored},
        f"imported {stored} memories ({done - stored} duplicates skipped)",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mcp"]:
        from .mcp_server import main as mcp_main

        return mcp_main(argv[1:])
    p = argparse.ArgumentParser(prog="memoturn", description="Memoturn command line")
    p.add_argument(
        "--url",
        default=os.environ.get("MEMOTURN_URL", "http://127.0.0.1:7411"),
        help="node or gateway URL (env MEMOTURN_URL)",
    )
    p.add_argument("--token", default=os.environ.get("MEMOTURN_TOKEN"), help="bearer token (env MEMOTURN_TOKEN)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="cmd", required=True)

    db = sub.add_parser("db", help="databases").add_subparsers(dest="action", required=True)
    db.add_parser("list")
    for action in ("create", "show", "delete"):
        db.add_parser(action).add_argument("name")

    kv = sub.add_parser("kv", help="key-value").add_subparsers(dest="action", required=True)
    k = kv.add_parser("get")
    k.add_argument("db"), k.add_argument("key"), k.add_argument("--min-txid", type=int)
    k = kv.add_parser("put")
    k.add_argument("db"), k.add_argument("key"), k.add_argument("value", help="JSON (a bare word is a string)")
    k.add_argument("--ttl", type=float), k.add_argument("--durable", action="store_true")
    k = kv.add_parser("delete")
    k.add_argument("db"), k.add_argument("key"), k.add_argument("--durable", action="store_true")
    k = kv.add_parser("list")
    k.add_argument("db"), k.add_argument("--prefix", default=""), k.add_argument("--limit", type=int, default=100)

    s = sub.add_parser("sql", help="run SQL statements in one transaction")
    s.add_argument("db"), s.add_argument("statements", nargs="+"), s.add_argument("--durable", action="store_true")

    mem = sub.add_parser("memory", help="typed memories of a profile").add_subparsers(dest="action", required=True)
    m = mem.add_parser("add")
    m.add_argument("namespace"), m.add_argument("profile"), m.add_argument("content")
    m.add_argument("--type", default="fact"), m.add_argument("--subject"), m.add_argument("--supersedes")
    m.add_argument("--tag", action="append", dest="tags"), m.add_argument("--metadata", help="JSON object")
    m.add_argument("--event-time", type=float), m.add_argument("--durable", action="store_true")
    m = mem.add_parser("recall")
    m.add_argument("namespace"), m.add_argument("profile"), m.add_argument("query")
    m.add_argument("--limit", type=int, default=10), m.add_argument("--type", action="append", dest="types")
    m.add_argument("--tag", action="append", dest="tags"), m.add_argument("--include-superseded", action="store_true")
    m = mem.add_parser("list")
    m.add_argument("namespace"), m.add_argument("profile"), m.add_argument("--type", action="append", dest="types")
    m.add_argument("--include-superseded", action="store_true"), m.add_argument("--limit", type=int, default=100)
    m = mem.add_parser("forget")
    m.add_argument("namespace"), m.add_argument("profile"), m.add_argument("id")

    e = sub.add_parser("export", help="a profile's memories as JSON lines")
    e.add_argument("namespace"), e.add_argument("profile"), e.add_argument("--out", help="file (default: stdout)")
    i = sub.add_parser("import", help="add memories from JSON lines (as written by export)")
    i.add_argument("namespace"), i.add_argument("profile"), i.add_argument("file")
    i.add_argument("--batch", type=int, default=200)

    br = sub.add_parser("branch", help="branches of a database").add_subparsers(dest="action", required=True)
    b = br.add_parser("fork")
    b.add_argument("db"), b.add_argument("name"), b.add_argument("--parent", default="main")
    b.add_argument("--txid", type=int), b.add_argument("--checkpoint"), b.add_argument("--timestamp", type=float)
    b.add_argument("--ttl", type=float, help="burner branch: seconds until it is deleted")
    br.add_parser("list").add_argument("db")
    b = br.add_parser("delete")
    b.add_argument("db"), b.add_argument("name")
    b = br.add_parser("rewind")
    b.add_argument("db"), b.add_argument("name"), b.add_argument("--txid", type=int), b.add_argument("--checkpoint")
    (
        b.add_argument("--timestamp", type=float),
        b.add_argument("--undo", action="store_true", help="undo the last rewind"),
    )
    b = br.add_parser("policy", help="compaction and retention of one branch (unset: node defaults)")
    b.add_argument("db"), b.add_argument("name"), b.add_argument("--snapshot-every-txids", type=int)
    b.add_argument("--keep-snapshots", type=int), b.add_argument("--retention-seconds", type=float)
    b.add_argument("--merge-segments-over", type=int)
    cp = sub.add_parser("checkpoint", help="named txids of a branch").add_subparsers(dest="action", required=True)
    c = cp.add_parser("create")
    c.add_argument("db"), c.add_argument("branch"), c.add_argument("name"), c.add_argument("--txid", type=int)
    c = cp.add_parser("list")
    c.add_argument("db"), c.add_argument("branch")
    c = cp.add_parser("delete")
    c.add_argument("db"), c.add_argument("branch"), c.add_argument("name")
    g = sub.add_parser("gc", help="garbage-collect a database's unreferenced objects")
    g.add_argument("db"), g.add_argument("--grace", type=float), g.add_argument("--dry-run", action="store_true")

    sub.add_parser("mcp", help="run the MCP server (stdio, or --http HOST:PORT); see memoturn mcp --help")
    sub.add_parser("nodes", help="live nodes (ask a gateway)")
    o = sub.add_parser("owner", help="owner, epoch, head txid and replica lag of a database (ask a gateway)")
    o.add_argument("db"), o.add_argument("--branch", default="main")

    args = p.parse_args(argv)
    try:
        with Memoturn(args.url, token=args.token, timeout=args.timeout, retries=2) as mt:
            _run(args, mt)
    except CLIError as exc:
        print(f"memoturn: {exc}", file=sys.stderr)
        return exc.code
    except MemoturnError as exc:
        if exc.type == "unreachable":
            print(f"memoturn: cannot reach {args.url}: {exc.detail}", file=sys.stderr)
            return 2
        print(f"memoturn: {exc.status} {exc.detail}", file=sys.stderr)
        return 1
    return 0


def _durable(args: argparse.Namespace) -> str | None:
    return "durable" if getattr(args, "durable", False) else None


def _run(args: argparse.Namespace, mt: Memoturn) -> None:
    if args.cmd == "db":
        if args.action == "list":
            names = mt.list_databases(limit=1000)["databases"]
            _out(args, names, "\n".join(names))
        elif args.action == "create":
            _out(args, mt.create_database(args.name).data)
        elif args.action == "show":
            _out(args, mt.describe_database(args.name).data)
        else:
            mt.delete_database(args.name)
    elif args.cmd == "kv":
        d = mt.database(args.db)
        if args.action == "get":
            _out(args, d.kv_get(args.key, min_txid=args.min_txid)["value"])
        elif args.action == "put":
            _out(args, d.kv_put(args.key, _json_arg(args.value), ttl_seconds=args.ttl, durability=_durable(args)).data)
        elif args.action == "delete":
            _out(args, d.kv_delete(args.key, durability=_durable(args)).data)
        else:
            _out(args, d.kv_list(args.prefix, args.limit)["items"])
    elif args.cmd == "sql":
        _out(args, mt.database(args.db).sql(*args.statements, durability=_durable(args)).data)
    elif args.cmd == "memory":
        prof = mt.profile(args.namespace, args.profile)
        if args.action == "add":
            r = prof.add(
                args.content,
                type=args.type,
                subject=args.subject,
                supersedes=args.supersedes,
                tags=args.tags,
                metadata=_json_object(args.metadata, "--metadata"),
                event_time=args.event_time,
                durability=_durable(args),
            )
            note = " (duplicate of an existing memory)" if r["duplicate"] else ""
            _out(args, r.data, f"stored {r['memory']['id']} at txid {r.txid}{note}")
        elif args.action == "recall":
            r = prof.recall(
                args.query,
                limit=args.limit,
                types=args.types,
                tags=args.tags,
                include_superseded=args.include_superseded or None,
            )
            _out(
                args,
                r.data,
                "\n".join(f"{h['score']:.4f}  {_memory_line(h['memory'])}" for h in r["results"])
                or "no memories matched",
            )
        elif args.action == "list":
            r = prof.list(types=args.types, include_superseded=args.include_superseded, limit=args.limit)
            _out(args, r.data, "\n".join(_memory_line(m) for m in r["memories"]) or "no memories")
        else:
            prof.forget(args.id)
            _out(args, {"forgotten": args.id}, f"forgot {args.id}")
    elif args.cmd == "branch":
        if args.action == "fork":
            r = mt.database(args.db, args.parent).fork(
                args.name, txid=args.txid, checkpoint=args.checkpoint, timestamp=args.timestamp, ttl_seconds=args.ttl
            )
            _out(args, r.data, f"forked {args.db}/{args.name} from {args.parent}@{r['parent']['txid']}")
        elif args.action == "list":
            r = mt.database(args.db).branches()
            _out(
                args,
                r["branches"],
                "\n".join(
                    f"{b['branch']:<20} head {b['head_txid']:<8}"
                    + (f" from {b['parent']['branch']}@{b['parent']['txid']}" if b["parent"] else "")
                    + (" (burner)" if b["expires_at"] else "")
                    for b in r["branches"]
                ),
            )
        elif args.action == "policy":
            fields = {
                k: getattr(args, k)
                for k in ("snapshot_every_txids", "keep_snapshots", "retention_seconds", "merge_segments_over")
                if getattr(args, k) is not None
            }
            _out(args, mt.database(args.db, args.name).set_policy(**fields).data)
        elif args.action == "delete":
            mt.database(args.db, args.name).delete_branch()
            _out(args, {"deleted": args.name}, f"deleted branch {args.name}")
        else:
            d = mt.database(args.db, args.name)
            r = (
                d.undo_rewind()
                if args.undo
                else d.rewind(txid=args.txid, checkpoint=args.checkpoint, timestamp=args.timestamp)
            )
            _out(args, r.data, f"{args.db}/{args.name} is at txid {r['head_txid']}")
    elif args.cmd == "checkpoint":
        d = mt.database(args.db, args.branch)
        if args.action == "create":
            r = d.checkpoint(args.name, args.txid)
            _out(args, r.data, f"checkpoint {args.name} = txid {r['txid']}")
        elif args.action == "list":
            _out(args, d.checkpoints()["checkpoints"])
        else:
            d.delete_checkpoint(args.name)
            _out(args, {"deleted": args.name}, f"deleted checkpoint {args.name}")
    elif args.cmd == "gc":
        _out(args, mt.database(args.db).gc(grace_seconds=args.grace, dry_run=args.dry_run).data)
    elif args.cmd == "export":
        _export(args, mt)
    elif args.cmd == "import":
        _import(args, mt)
    elif args.cmd == "nodes":
        _out(args, mt.http.get("/v1/cluster/nodes").raise_for_status().json()["nodes"])
    elif args.cmd == "owner":
        _out(args, _owner(args, mt))


def _owner(args: argparse.Namespace, mt: Memoturn) -> dict[str, Any]:
    placement = mt.http.get(f"/v1/cluster/placement/{args.db}", params={"branch": args.branch})
    if placement.status_code != 200:
        raise CLIError(f"{args.url} is not a gateway (no /v1/cluster/placement)")
    placement_data = placement.json()
    info = mt.http.get(f"/v1/databases/{args.db}", params={"branch": args.branch})
    if info.status_code != 200:
        raise MemoturnError(info.status_code, "error", info.json().get("detail", info.text))
    data = info.json()
    out: dict[str, Any] = {
        "database": args.db,
        "branch": args.branch,
        "owner": placement_data["owner"],
        "epoch": data["epoch"],
        "head_txid": data["head_txid"],
        "shipped_txid": data["shipped_txid"],
        "tier": data["tier"],
        "replicas": [],
    }
    for replica in placement_data.get("replicas", []):
        entry: dict[str, Any] = {"node": replica["id"]}
        try:
            r = httpx.get(
                replica["url"].rstrip("/") + f"/internal/v1/replicas/{args.db}",
                params={"branch": args.branch},
                timeout=args.timeout,
            )
            if r.status_code == 200:
                entry["head_txid"] = r.json()["head_txid"]
                entry["lag_txids"] = max(0, data["head_txid"] - entry["head_txid"])
            else:
                entry["state"] = "no copy yet"
        except httpx.HTTPError as exc:
            entry["state"] = f"unreachable: {exc}"
        out["replicas"].append(entry)
    return out


if __name__ == "__main__":
    sys.exit(main())
