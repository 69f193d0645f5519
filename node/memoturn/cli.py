"""``memoturn``: the command line over the HTTP API.

Every failure prints one line on stderr (the server's problem ``detail`` when there is one)
and exits non-zero: 1 for an error the server reported, 2 for bad usage or an unreachable
server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx


class CLIError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _request(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if getattr(args, "durable", False):
        headers["Memoturn-Durability"] = "durable"
    if getattr(args, "min_txid", None) is not None:
        headers["Memoturn-Min-Txid"] = str(args.min_txid)
    try:
        r = httpx.request(method, args.url.rstrip("/") + path, headers=headers, timeout=args.timeout, **kwargs)
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot reach {args.url}: {exc}", 2) from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail") or r.text
        except ValueError:
            detail = r.text.strip() or r.reason_phrase
        raise CLIError(f"{r.status_code} {detail}")
    return r


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word is a string value


def _owner(args: argparse.Namespace) -> dict[str, Any]:
    placement = _request(args, "GET", f"/v1/cluster/placement/{args.db}", params={"branch": args.branch}).json()
    info = _request(args, "GET", f"/v1/databases/{args.db}", params={"branch": args.branch}).json()
    out: dict[str, Any] = {"database": args.db, "branch": args.branch, "owner": placement["owner"],
                           "epoch": info["epoch"], "head_txid": info["head_txid"], "shipped_txid": info["shipped_txid"],
                           "tier": info["tier"], "replicas": []}
    for replica in placement.get("replicas", []):
        entry: dict[str, Any] = {"node": replica["id"]}
        try:
            r = httpx.get(replica["url"].rstrip("/") + f"/internal/v1/replicas/{args.db}",
                          params={"branch": args.branch}, timeout=args.timeout)
            if r.status_code == 200:
                entry["head_txid"] = r.json()["head_txid"]
                entry["lag_txids"] = max(0, info["head_txid"] - entry["head_txid"])
            else:
                entry["state"] = "no copy yet"
        except httpx.HTTPError as exc:
            entry["state"] = f"unreachable: {exc}"
        out["replicas"].append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="memoturn", description="Memoturn command line")
    p.add_argument("--url", default=os.environ.get("MEMOTURN_URL", "http://127.0.0.1:7411"),
                   help="node or gateway URL (env MEMOTURN_URL)")
    p.add_argument("--timeout", type=float, default=30.0)
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

    sub.add_parser("nodes", help="live nodes (ask a gateway)")
    o = sub.add_parser("owner", help="owner, epoch, head txid and replica lag of a database (ask a gateway)")
    o.add_argument("db"), o.add_argument("--branch", default="main")

    s = sub.add_parser("sql", help="run SQL statements in one transaction")
    s.add_argument("db"), s.add_argument("statements", nargs="+"), s.add_argument("--durable", action="store_true")

    args = p.parse_args(argv)
    try:
        if args.cmd == "db":
            if args.action == "list":
                _print(_request(args, "GET", "/v1/databases", params={"limit": 1000}).json()["databases"])
            elif args.action == "create":
                _print(_request(args, "POST", "/v1/databases", json={"name": args.name}).json())
            elif args.action == "show":
                _print(_request(args, "GET", f"/v1/databases/{args.name}").json())
            else:
                _request(args, "DELETE", f"/v1/databases/{args.name}")
        elif args.cmd == "kv":
            base = f"/v1/databases/{args.db}/kv"
            if args.action == "get":
                _print(_request(args, "GET", f"{base}/{args.key}").json()["value"])
            elif args.action == "put":
                body = {"value": _json_arg(args.value), "ttl_seconds": args.ttl}
                _print(_request(args, "PUT", f"{base}/{args.key}", json=body).json())
            elif args.action == "delete":
                _print(_request(args, "DELETE", f"{base}/{args.key}").json())
            else:
                _print(_request(args, "GET", base, params={"prefix": args.prefix, "limit": args.limit}).json()["items"])
        elif args.cmd == "nodes":
            _print(_request(args, "GET", "/v1/cluster/nodes").json()["nodes"])
        elif args.cmd == "owner":
            _print(_owner(args))
        elif args.cmd == "sql":
            body = {"statements": [{"sql": sql} for sql in args.statements]}
            _print(_request(args, "POST", f"/v1/databases/{args.db}/sql", json=body).json())
    except CLIError as exc:
        print(f"memoturn: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
