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
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx

from . import mcp_server
from .client import Memoturn, ProblemError, transport_problem
from .errors import MemoturnError
from .timewindow import FORMS, resolve_window, seconds


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


def _hit_line(h: dict[str, Any]) -> str:
    """One recall hit: cosine similarity, BM25 text score ('-' when the text did not match), fused score."""
    sim = h.get("similarity")
    text = h.get("text_score")
    return (
        f"sim {'-' if sim is None else f'{sim:.3f}':>6}  text {'-' if text is None else f'{text:.2f}':>6}  "
        f"fused {h['score']:.4f}  {_memory_line(h['memory'])}"
        + (f"  (via {h['via']['type']} from {h['via']['from']})" if h.get("via") else "")
    )


def _pages(fetch: Callable[..., Any], key: str) -> Iterator[dict[str, Any]]:
    """Every item under ``key`` of a paged listing, following ``next_cursor``."""
    cursor = None
    while True:
        page = fetch(limit=1000, cursor=cursor)
        yield from page[key]
        cursor = page["next_cursor"]
        if not cursor:
            return


def _export(args: argparse.Namespace, mt: Memoturn) -> None:
    """Memories (superseded ones included) a line each, then each live relationship as a
    ``{"relationship": ...}`` line naming its two memories by their exported ids."""
    profile = mt.profile(args.namespace, args.profile)
    total = profile.stats()["memories"]
    out = open(args.out, "w") if args.out else sys.stdout
    n = links = 0
    try:
        for m in _pages(lambda **page: profile.list(include_superseded=True, **page), "memories"):
            out.write(json.dumps(m, separators=(",", ":")) + "\n")
            n += 1
            _progress(n, total, "export")
        for rel in _pages(profile.relationships, "relationships"):
            out.write(json.dumps({"relationship": rel}, separators=(",", ":")) + "\n")
            links += 1
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"exported {n} memories and {links} relationships to {args.out}", file=sys.stderr)


_IMPORT_FIELDS = ("type", "content", "metadata", "tags", "subject", "event_time")
_RELATIONSHIP_FIELDS = ("source", "target", "type")


def _import(args: argparse.Namespace, mt: Memoturn) -> None:
    profile = mt.profile(args.namespace, args.profile)
    try:
        with open(args.file) as f:
            lines = [line for line in f if line.strip()]
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc.strerror}") from None
    items: list[dict[str, Any]] = []
    exported_ids: list[str | None] = []
    links: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            m = json.loads(line)
        except ValueError as exc:
            raise CLIError(f"{args.file}:{number}: not JSON ({exc}); nothing imported") from None
        if isinstance(m, dict) and isinstance(m.get("relationship"), dict):
            rel = m["relationship"]
            if not all(isinstance(rel.get(k), str) for k in _RELATIONSHIP_FIELDS):
                raise CLIError(
                    f"{args.file}:{number}: a relationship needs source, target and type strings; nothing imported"
                )
            links.append(rel)
            continue
        if not isinstance(m, dict) or "content" not in m:
            raise CLIError(
                f"{args.file}:{number}: each line must be a memory object with 'content' or a "
                "{'relationship': ...} object; nothing imported"
            )
        if m.get("current") is False:
            continue  # superseded history is exported for the record; import keeps current memories
        items.append({k: m[k] for k in _IMPORT_FIELDS if m.get(k) is not None})
        exported_ids.append(m["id"] if isinstance(m.get("id"), str) else None)
    done = stored = 0
    new_id: dict[str, str] = {}  # exported id -> id in this profile (a duplicate's is the existing one)
    for start in range(0, len(items), args.batch):
        chunk = items[start : start + args.batch]
        result = profile.add_many(chunk)
        for old, saved in zip(exported_ids[start : start + args.batch], result["memories"], strict=True):
            if old is not None:
                new_id[old] = saved["memory"]["id"]
        stored += sum(1 for s in result["memories"] if not s["duplicate"])
        done += len(chunk)
        _progress(done, len(items), "import")
    related = skipped = 0
    for rel in links:
        source, target = new_id.get(rel["source"]), new_id.get(rel["target"])
        if source is None or target is None:
            skipped += 1  # an end was superseded (not imported) or is not in the file
            continue
        weight, properties = rel.get("weight"), rel.get("properties")
        made = profile.relate(
            source,
            target,
            rel["type"],
            weight=weight if isinstance(weight, (int, float)) else None,
            properties=properties if isinstance(properties, dict) else None,
        )
        related += 0 if made["duplicate"] else 1
    _out(
        args,
        {
            "read": len(lines),
            "imported": stored,
            "duplicates": done - stored,
            "relationships": related,
            "relationships_skipped": skipped,
        },
        f"imported {stored} memories ({done - stored} duplicates skipped) and {related} relationships"
        + (f" ({skipped} skipped: an end not imported)" if skipped else ""),
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``memoturn`` argument parser: every command and option with its help."""
    p = argparse.ArgumentParser(
        prog="memoturn",
        description="Memoturn command line: databases, KV, SQL, branches and agent memories over the HTTP API.",
        epilog="Every command prints one line on stderr and exits non-zero on failure "
        "(1: the server refused, 2: bad usage or input, or the server is unreachable).",
    )
    p.add_argument(
        "--url",
        default=os.environ.get("MEMOTURN_URL", "http://127.0.0.1:7411"),
        help="node or gateway URL (env MEMOTURN_URL; default %(default)s)",
    )
    p.add_argument("--token", default=os.environ.get("MEMOTURN_TOKEN"), help="bearer token (env MEMOTURN_TOKEN)")
    p.add_argument(
        "--ca-file",
        default=os.environ.get("MEMOTURN_CA_FILE") or None,
        help="PEM CA bundle that signed the server's certificate, for https:// URLs "
        "(env MEMOTURN_CA_FILE; default the system's CAs)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each request (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of human-readable text")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, help=text, description=text)
        return parser

    def actions(name: str, text: str) -> Any:
        return command(sub, name, text).add_subparsers(dest="action", required=True, metavar="ACTION")

    def durable(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--durable", action="store_true", help="wait until the write is in object storage")

    db = actions("db", "databases: list, create, show, delete")
    command(db, "list", "list the databases")
    command(db, "create", "create a database").add_argument("name", help="database name")
    command(db, "show", "describe a database (tier, head and shipped txid, epoch)").add_argument(
        "name", help="database name"
    )
    command(db, "delete", "delete a database and everything stored for it").add_argument("name", help="database name")

    kv = actions("kv", "key-value: get, put, delete, list")
    k = command(kv, "get", "print the value of a key")
    k.add_argument("db", help="database name")
    k.add_argument("key", help="the key")
    k.add_argument("--min-txid", type=int, help="wait until the database has reached this txid (read-your-writes)")
    k = command(kv, "put", "set a key")
    k.add_argument("db", help="database name")
    k.add_argument("key", help="the key")
    k.add_argument("value", help="the value as JSON (a bare word is a string)")
    k.add_argument("--ttl", type=float, help="seconds until the key expires")
    durable(k)
    k = command(kv, "delete", "delete a key")
    k.add_argument("db", help="database name")
    k.add_argument("key", help="the key")
    durable(k)
    k = command(kv, "list", "list keys and values")
    k.add_argument("db", help="database name")
    k.add_argument("--prefix", default="", help="only keys starting with this")
    k.add_argument("--limit", type=int, default=100, help="at most this many keys (default %(default)s)")

    s = command(sub, "sql", "run SQL statements in one transaction")
    s.add_argument("db", help="database name")
    s.add_argument("statements", nargs="+", help="SQL statements, run in order")
    durable(s)

    mem = actions(
        "memory",
        "typed memories of a profile: add, recall, list, forget, forget-matching; "
        "relationships: relate, unrelate, neighbours, path, subgraph",
    )

    def on_branch(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--branch",
            default="main",
            help="branch of the profile's database (default %(default)s; fork with "
            "`memoturn branch fork NAMESPACE--PROFILE NAME`)",
        )

    def window(parser: argparse.ArgumentParser, what: str = "only memories") -> None:
        parser.add_argument(
            "--since",
            metavar="TIME",
            help=f"{what} whose event time (else record time) is at or after this (unix seconds or ISO 8601)",
        )
        parser.add_argument(
            "--until",
            metavar="TIME",
            help=f"{what} whose event time (else record time) is at or before this (unix seconds or ISO 8601)",
        )
        parser.add_argument("--window", metavar="WORDS", help=f"{what} from this window, in local time: {FORMS}")

    m = command(mem, "add", "store a memory (one with the same --subject supersedes the current one)")
    m.add_argument("namespace", help="namespace (tenant)")
    m.add_argument("profile", help="profile in the namespace (an agent, a user)")
    m.add_argument("content", help="the memory's text")
    m.add_argument("--type", default="fact", help="fact, preference, event, instruction, episode or your own")
    m.add_argument("--subject", help="what it is about: a new memory with this subject supersedes the current one")
    m.add_argument("--supersedes", metavar="ID", help="id of the memory this one replaces")
    m.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="a tag (repeat for several)")
    m.add_argument("--metadata", help="a JSON object of metadata")
    m.add_argument("--event-time", type=float, help="when it happened or became true (unix seconds)")
    durable(m)
    on_branch(m)
    m = command(mem, "recall", "find the memories most relevant to a query")
    m.add_argument("namespace", help="namespace (tenant)")
    m.add_argument("profile", help="profile in the namespace")
    m.add_argument("query", help="what to look for (keywords and meaning)")
    m.add_argument("--limit", type=int, default=10, help="at most this many memories (default %(default)s)")
    m.add_argument(
        "--type", action="append", dest="types", metavar="TYPE", help="only memories of this type (repeat for several)"
    )
    m.add_argument(
        "--tag", action="append", dest="tags", metavar="TAG", help="only memories with this tag (repeat for several)"
    )
    m.add_argument("--include-superseded", action="store_true", help="also memories that were replaced")
    m.add_argument(
        "--min-score",
        type=float,
        metavar="COSINE",
        help="relevance floor: the cosine similarity a memory whose words did not match must reach "
        "(0 = off; default: the server's)",
    )
    window(m)
    m.add_argument("--as-of", metavar="TIME", help="recall what was current at this time (unix seconds or ISO 8601)")
    m.add_argument(
        "--expand",
        action="append",
        metavar="TYPE",
        help="also the hits' neighbours along this relationship type, one hop (repeat for several)",
    )
    on_branch(m)
    m = command(mem, "list", "list the memories of a profile")
    m.add_argument("namespace", help="namespace (tenant)")
    m.add_argument("profile", help="profile in the namespace")
    m.add_argument(
        "--type", action="append", dest="types", metavar="TYPE", help="only memories of this type (repeat for several)"
    )
    m.add_argument("--include-superseded", action="store_true", help="also memories that were replaced")
    m.add_argument("--limit", type=int, default=100, help="at most this many memories (default %(default)s)")
    m.add_argument(
        "--tag", action="append", dest="tags", metavar="TAG", help="only memories with this tag (repeat for several)"
    )
    window(m)
    m.add_argument("--as-of", metavar="TIME", help="list what was current at this time (unix seconds or ISO 8601)")
    m.add_argument("--cursor", help="continue after a previous page (its next_cursor, printed with --json)")
    on_branch(m)
    m = command(mem, "forget", "delete a memory for good")
    m.add_argument("namespace", help="namespace (tenant)")
    m.add_argument("profile", help="profile in the namespace")
    m.add_argument("id", help="the memory's id")
    on_branch(m)
    m = command(
        mem,
        "forget-matching",
        "delete for good every memory (superseded ones too) of a type, with tags, or in a time range",
    )
    m.add_argument("namespace", help="namespace (tenant)")
    m.add_argument("profile", help="profile in the namespace")
    m.add_argument("--type", action="append", dest="types", metavar="TYPE", help="memories of this type (repeat)")
    m.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="memories with this tag (repeat: all)")
    window(m, "memories")
    m.add_argument("--dry-run", action="store_true", help="delete nothing: print what would be deleted")
    durable(m)
    on_branch(m)
    _relationship_parsers(mem, command, durable, on_branch)

    e = command(sub, "export", "write a profile's memories (superseded ones included) and relationships as JSON lines")
    e.add_argument("namespace", help="namespace (tenant)")
    e.add_argument("profile", help="profile in the namespace")
    e.add_argument("--out", help="file to write (default: stdout)")
    i = command(
        sub, "import", "add memories and their relationships from JSON lines (as written by export; current ones only)"
    )
    i.add_argument("namespace", help="namespace (tenant)")
    i.add_argument("profile", help="profile in the namespace (created on first use)")
    i.add_argument("file", help="JSON-lines file to read")
    i.add_argument("--batch", type=_positive, default=200, help="memories per request (default %(default)s)")

    br = actions("branch", "branches of a database: fork, list, delete, rewind, policy")
    b = command(br, "fork", "create a branch from a point of its parent")
    b.add_argument("db", help="database name")
    b.add_argument("name", help="the new branch")
    b.add_argument("--parent", default="main", help="branch to fork from (default %(default)s)")
    b.add_argument("--txid", type=int, help="fork at this txid (default: the parent's head)")
    b.add_argument("--checkpoint", help="fork at this checkpoint of the parent")
    b.add_argument("--timestamp", type=float, help="fork at the last txid committed by this time (unix seconds)")
    b.add_argument("--ttl", type=float, help="burner branch: seconds until it is deleted")
    command(br, "list", "list the branches of a database").add_argument("db", help="database name")
    b = command(br, "delete", "delete a branch")
    b.add_argument("db", help="database name")
    b.add_argument("name", help="the branch")
    b = command(br, "rewind", "move a branch back to an earlier txid, checkpoint or time (or undo that)")
    b.add_argument("db", help="database name")
    b.add_argument("name", help="the branch")
    b.add_argument("--txid", type=int, help="rewind to this txid")
    b.add_argument("--checkpoint", help="rewind to this checkpoint")
    b.add_argument("--timestamp", type=float, help="rewind to the last txid committed by this time (unix seconds)")
    b.add_argument("--undo", action="store_true", help="undo the last rewind")
    b = command(br, "policy", "compaction and retention of one branch (unset: node defaults)")
    b.add_argument("db", help="database name")
    b.add_argument("name", help="the branch")
    b.add_argument("--snapshot-every-txids", type=int, help="write a snapshot after this many txids")
    b.add_argument("--keep-snapshots", type=int, help="snapshots to keep")
    b.add_argument("--retention-seconds", type=float, help="how far back point-in-time reads and rewinds reach")
    b.add_argument("--merge-segments-over", type=int, help="merge small segments once there are more than this")

    cp = actions("checkpoint", "named txids of a branch: create, list, delete")
    c = command(cp, "create", "name a txid of a branch")
    c.add_argument("db", help="database name")
    c.add_argument("branch", help="the branch")
    c.add_argument("name", help="the checkpoint's name")
    c.add_argument("--txid", type=int, help="the txid to name (default: the head)")
    c = command(cp, "list", "list the checkpoints of a branch")
    c.add_argument("db", help="database name")
    c.add_argument("branch", help="the branch")
    c = command(cp, "delete", "delete a checkpoint")
    c.add_argument("db", help="database name")
    c.add_argument("branch", help="the branch")
    c.add_argument("name", help="the checkpoint's name")

    g = command(sub, "gc", "garbage-collect a database's unreferenced objects")
    g.add_argument("db", help="database name")
    g.add_argument("--grace", type=float, help="keep objects younger than this many seconds")
    g.add_argument("--dry-run", action="store_true", help="only report what would be deleted")

    # Its --url/--token set nothing unless given, so both `memoturn --url URL mcp` and `memoturn mcp --url URL` work.
    mcp_server.add_arguments(
        command(sub, "mcp", "run the MCP server for agents (stdio, or --http HOST:PORT with --http-token)"),
        connection_defaults=False,
    )
    command(sub, "nodes", "list the live nodes (ask a gateway)")
    o = command(sub, "owner", "owner, epoch, head txid and replica lag of a database (ask a gateway)")
    o.add_argument("db", help="database name")
    o.add_argument("--branch", default="main", help="the branch (default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.cmd == "mcp":
        return mcp_server.serve(args)
    try:
        client = Memoturn(args.url, token=args.token, timeout=args.timeout, retries=2, verify=args.ca_file or True)
    except ValueError as exc:  # an unusable --ca-file
        print(f"memoturn: --ca-file: {exc}", file=sys.stderr)
        return 2
    try:
        with client as mt:
            _run(args, mt)
    except CLIError as exc:
        print(f"memoturn: {exc}", file=sys.stderr)
        return exc.code
    except ProblemError as exc:
        if exc.type == "unreachable":
            print(f"memoturn: cannot reach {exc.detail}", file=sys.stderr)  # the detail names the URL
            return 2
        print(f"memoturn: {exc.status} {exc.detail}", file=sys.stderr)
        return 1
    except MemoturnError as exc:
        print(f"memoturn: {exc.type}: {exc.detail}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"memoturn: cannot reach {transport_problem(args.url, exc)[0]}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"memoturn: {args.url} answered something that is not JSON: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"memoturn: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memoturn: interrupted", file=sys.stderr)
        return 130
    return 0


def _window(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """``--since``/``--until`` or ``--window`` (in local time) as unix seconds, for the commands that take them."""
    try:
        return resolve_window(
            getattr(args, "window", None),
            getattr(args, "since", None),
            getattr(args, "until", None),
            datetime.now().astimezone(),
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _as_of(args: argparse.Namespace) -> float | None:
    try:
        return None if args.as_of is None else seconds(args.as_of, "--as-of")
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _durable(args: argparse.Namespace) -> str | None:
    return "durable" if getattr(args, "durable", False) else None


RELATIONSHIP_ACTIONS = ("relate", "unrelate", "neighbours", "path", "subgraph")


def _relationship_parsers(mem: Any, command: Any, durable: Any, on_branch: Any) -> None:
    """``memoturn memory relate|unrelate|neighbours|path|subgraph``: links between a profile's memories."""

    def profile_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("namespace", help="namespace (tenant)")
        parser.add_argument("profile", help="profile in the namespace")

    def walk(parser: argparse.ArgumentParser, direction: str) -> None:
        parser.add_argument(
            "--type", action="append", dest="types", metavar="TYPE", help="only this relationship type (repeat)"
        )
        parser.add_argument(
            "--direction",
            choices=("out", "in", "both"),
            default=direction,
            help="along relationships (out), against them (in) or both (default %(default)s)",
        )
        parser.add_argument("--as-of", metavar="TIME", help="as they were at this time (unix seconds or ISO 8601)")
        parser.add_argument("--include-superseded", action="store_true", help="also through replaced memories")
        on_branch(parser)

    m = command(mem, "relate", "link two memories: SOURCE -[TYPE]-> TARGET")
    profile_args(m)
    m.add_argument("source", help="id of the memory the relationship starts from")
    m.add_argument("target", help="id of the memory it points to")
    m.add_argument(
        "--type",
        default="relates_to",
        help="relates_to (default), caused_by, part_of, contradicts, follows or your own (a-z, 0-9, _)",
    )
    m.add_argument("--weight", type=float, help="strength between 0 and 1")
    m.add_argument("--properties", help="a JSON object of properties")
    durable(m)
    on_branch(m)
    m = command(mem, "unrelate", "remove a relationship (it stays visible --as-of an earlier time)")
    profile_args(m)
    m.add_argument("id", help="the relationship's id")
    durable(m)
    on_branch(m)
    m = command(mem, "neighbours", "the relationships of a memory and the memories at their other end")
    profile_args(m)
    m.add_argument("id", help="the memory's id")
    m.add_argument("--limit", type=int, default=100, help="at most this many (default %(default)s)")
    walk(m, "both")
    m = command(mem, "path", "a shortest path of relationships from one memory to another")
    profile_args(m)
    m.add_argument("source", help="id of the memory to start from")
    m.add_argument("target", help="id of the memory to reach")
    m.add_argument("--max-depth", type=int, default=4, help="at most this many hops (1-6, default %(default)s)")
    walk(m, "out")
    m = command(mem, "subgraph", "the memories within a few hops of one, and the relationships among them")
    profile_args(m)
    m.add_argument("id", help="the memory's id")
    m.add_argument("--depth", type=int, default=2, help="at most this many hops (1-4, default %(default)s)")
    m.add_argument("--limit", type=int, default=50, help="at most this many memories (default %(default)s)")
    walk(m, "both")


def _relationship_line(rel: dict[str, Any]) -> str:
    weight = f" weight {rel['weight']}" if rel.get("weight") is not None else ""
    return f"{rel['id']}  {rel['source']} -[{rel['type']}]-> {rel['target']}{weight}"


def _run_relationship(args: argparse.Namespace, prof: Any) -> None:
    if args.action == "relate":
        r = prof.relate(
            args.source,
            args.target,
            args.type,
            weight=args.weight,
            properties=_json_object(args.properties, "--properties"),
            durability=_durable(args),
        )
        note = " (it existed already)" if r["duplicate"] else ""
        _out(args, r.data, f"related {_relationship_line(r['relationship'])} at txid {r.txid}{note}")
        return
    if args.action == "unrelate":
        r = prof.unrelate(args.id, durability=_durable(args))
        _out(args, {"removed": args.id, "txid": r.txid}, f"removed relationship {args.id}")
        return
    walk = {"types": args.types, "direction": args.direction, "as_of": _as_of(args)}
    walk["include_superseded"] = args.include_superseded
    if args.action == "neighbours":
        r = prof.neighbours(args.id, limit=args.limit, **walk)
        lines = [
            f"{'->' if n['direction'] == 'out' else '<-'} [{n['relationship']['type']}] {_memory_line(n['memory'])}"
            for n in r["results"]
        ]
        _out(args, r.data, "\n".join(lines) or "no relationships")
    elif args.action == "path":
        r = prof.path(args.source, args.target, max_depth=args.max_depth, **walk)
        human = "no path" + (" (the walk hit its bound)" if r["truncated"] else "")
        if r["found"]:
            steps = [_memory_line(r["memories"][0])]
            for rel, mem in zip(r["relationships"], r["memories"][1:], strict=False):
                steps += [f"  -[{rel['type']}]->", _memory_line(mem)]
            human = "\n".join(steps)
        _out(args, r.data, human)
    else:
        r = prof.subgraph(args.id, depth=args.depth, limit=args.limit, **walk)
        lines = [f"{n['depth']}  {_memory_line(n['memory'])}" for n in r["memories"]]
        lines += [_relationship_line(rel) for rel in r["relationships"]]
        _out(args, r.data, "\n".join(lines) + ("\n(truncated)" if r["truncated"] else ""))


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
        prof = mt.profile(args.namespace, args.profile, args.branch)
        since, until = _window(args)
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
                min_score=args.min_score,
                since=since,
                until=until,
                as_of=_as_of(args),
                expand=args.expand,
            )
            _out(args, r.data, "\n".join(_hit_line(h) for h in r["results"]) or "no memories matched")
        elif args.action == "list":
            r = prof.list(
                types=args.types,
                include_superseded=args.include_superseded,
                limit=args.limit,
                tags=args.tags,
                since=since,
                until=until,
                as_of=_as_of(args),
                cursor=args.cursor,
            )
            _out(args, r.data, "\n".join(_memory_line(m) for m in r["memories"]) or "no memories")
        elif args.action == "forget-matching":
            r = prof.forget_matching(
                types=args.types,
                tags=args.tags,
                since=since,
                until=until,
                dry_run=args.dry_run,
                durability=_durable(args),
            )
            verb = "would forget" if args.dry_run else "forgot"
            _out(args, r.data, f"{verb} {r['count']} memories" + "".join(f"\n{i}" for i in r["ids"]))
        elif args.action in RELATIONSHIP_ACTIONS:
            _run_relationship(args, prof)
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
        nodes = mt.http.get("/v1/cluster/nodes")
        if nodes.status_code == 404:
            raise CLIError(f"{args.url} is not a gateway (no /v1/cluster/nodes)")
        if nodes.status_code != 200:
            raise ProblemError.from_response(nodes)
        _out(args, nodes.json()["nodes"])
    elif args.cmd == "owner":
        _out(args, _owner(args, mt))


def _owner(args: argparse.Namespace, mt: Memoturn) -> dict[str, Any]:
    placement = mt.http.get(f"/v1/cluster/placement/{args.db}", params={"branch": args.branch})
    if placement.status_code != 200:
        raise CLIError(f"{args.url} is not a gateway (no /v1/cluster/placement)")
    placement_data = placement.json()
    info = mt.http.get(f"/v1/databases/{args.db}", params={"branch": args.branch})
    if info.status_code != 200:
        raise ProblemError.from_response(info)
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
            r = mt.http.get(  # the client's certificate checks apply to the replica node too
                replica["url"].rstrip("/") + f"/internal/v1/replicas/{args.db}",
                params={"branch": args.branch},
            )
            if r.status_code == 200:
                entry["head_txid"] = r.json()["head_txid"]
                entry["lag_txids"] = max(0, data["head_txid"] - entry["head_txid"])
            else:
                entry["state"] = "no copy yet"
        except httpx.HTTPError as exc:
            entry["state"] = f"unreachable: {transport_problem(replica['url'], exc)[0]}"
        out["replicas"].append(entry)
    return out


if __name__ == "__main__":
    sys.exit(main())
