"""JSON document collections in the reserved ``__memoturn_docs`` table, stored as JSONB.

Filters are a small Mongo-like language compiled to parameterised SQL over JSONB:

* ``{"path": value}`` equality; ``{"path": {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": v}}``,
  ``{"$in": [..]}``, ``{"$nin": [..]}``, ``{"$exists": true|false}``;
* ``{"$and": [f, …]}``, ``{"$or": [f, …]}``, ``{"$not": f}``; several keys in one object
  are AND-ed;
* paths are dotted (``a.b.0.c``: names of ``[A-Za-z0-9_-]`` or array indexes). They are
  validated and then written into the SQL as literals so that path indexes
  (``create_index``) can serve the query; every *value* is a bound parameter.

``sort`` is a list of ``{"path", "order": "asc"|"desc"}`` (ties broken by id); ``limit`` and
an opaque ``cursor`` page through results. ``patch`` applies an RFC 7386 JSON merge patch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from typing import Any

from ..errors import BadRequest, Conflict, NotFound, PayloadTooLarge

_SEGMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_-]{0,63}|\d{1,6})$")
_COLLECTION = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_OPS = {"$eq": "=", "$ne": "IS NOT", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
MAX_DEPTH = 16

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS __memoturn_docs(collection TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL,"
    " created_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (collection, id)) WITHOUT ROWID",
]


def check_collection(name: str) -> str:
    if not _COLLECTION.match(name or ""):
        raise BadRequest(f"invalid collection name {name!r}", type="invalid-name")
    return name


def json_path(path: str) -> str:
    """``a.b.0`` -> ``$."a"."b"[0]``, refusing anything but plain segments."""
    if not isinstance(path, str) or not path:
        raise BadRequest("a filter path must be a non-empty string", type="invalid-filter")
    out = "$"
    for seg in path.split("."):
        if not _SEGMENT.match(seg):
            raise BadRequest(f"invalid path segment {seg!r} in {path!r}", type="invalid-filter")
        out += f"[{seg}]" if seg.isdigit() else f'."{seg}"'
    return out


def _sql_value(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if v is None or isinstance(v, (int, float, str)):
        return v
    raise BadRequest(
        f"filters compare scalars (string, number, boolean, null), not {type(v).__name__}", type="invalid-filter"
    )


def compile_filter(f: Any, params: list[Any], depth: int = 0) -> str:
    if depth > MAX_DEPTH:
        raise BadRequest("filter nested too deeply", type="invalid-filter")
    if not isinstance(f, dict):
        raise BadRequest("a filter is a JSON object", type="invalid-filter")
    parts = []
    for key, value in f.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise BadRequest(f"{key} takes a non-empty list of filters", type="invalid-filter")
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(compile_filter(x, params, depth + 1) for x in value) + ")")
        elif key == "$not":
            parts.append("NOT (" + compile_filter(value, params, depth + 1) + ")")
        elif key.startswith("$"):
            raise BadRequest(f"unknown operator {key}", type="invalid-filter")
        else:
            expr = f"json_extract(body, '{json_path(key)}')"
            if isinstance(value, dict) and any(k.startswith("$") for k in value):
                for op, operand in value.items():
                    parts.append(_compare(expr, key, op, operand, params))
            elif value is None:
                parts.append(f"{expr} IS NULL")
            else:
                params.append(_sql_value(value))
                parts.append(f"{expr} = ?")
    return "(" + " AND ".join(parts) + ")" if parts else "1"


def _compare(expr: str, path: str, op: str, operand: Any, params: list[Any]) -> str:
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand or len(operand) > 1000:
            raise BadRequest(f"{op} takes a list of 1-1000 values", type="invalid-filter")
        params.extend(_sql_value(v) for v in operand)
        return f"{expr} {'NOT ' if op == '$nin' else ''}IN ({','.join('?' * len(operand))})"
    if op == "$exists":
        if not isinstance(operand, bool):
            raise BadRequest("$exists takes true or false", type="invalid-filter")
        return f"json_type(body, '{json_path(path)}') IS {'NOT ' if operand else ''}NULL"
    if op not in _OPS:
        raise BadRequest(f"unknown operator {op}", type="invalid-filter")
    params.append(_sql_value(operand))
    return f"{expr} {_OPS[op]} ?"


def _encode(body: Any, max_bytes: int) -> str:
    if not isinstance(body, dict):
        raise BadRequest("a document is a JSON object", type="invalid-document")
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > max_bytes:
        raise PayloadTooLarge(
            f"document is {len(text.encode())} bytes; the limit is {max_bytes}", type="document-too-large"
        )
    return text


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "body": json.loads(row[1]), "created_at": row[2], "updated_at": row[3]}


def ensure(conn: Any) -> None:
    for s in SCHEMA:
        conn.execute(s)


def insert(conn: Any, collection: str, doc_id: str | None, body: Any, max_bytes: int) -> dict[str, Any]:
    ensure(conn)
    text = _encode(body, max_bytes)
    doc_id = doc_id or uuid.uuid4().hex
    if conn.execute("SELECT 1 FROM __memoturn_docs WHERE collection = ? AND id = ?", (collection, doc_id)).fetchone():
        raise Conflict(f"document {doc_id!r} already exists in {collection!r}", type="already-exists")
    now = time.time()
    conn.execute("INSERT INTO __memoturn_docs VALUES (?, ?, jsonb(?), ?, ?)", (collection, doc_id, text, now, now))
    return get(conn, collection, doc_id)


def get(conn: Any, collection: str, doc_id: str) -> dict[str, Any]:
    row = None
    if _exists(conn):
        row = conn.execute(
            "SELECT id, json(body), created_at, updated_at FROM __memoturn_docs WHERE collection = ? AND id = ?",
            (collection, doc_id),
        ).fetchone()
    if row is None:
        raise NotFound(f"document {doc_id!r} not found in {collection!r}", type="document-not-found")
    return _row(row)


def replace(conn: Any, collection: str, doc_id: str, body: Any, max_bytes: int) -> dict[str, Any]:
    get(conn, collection, doc_id)
    conn.execute(
        "UPDATE __memoturn_docs SET body = jsonb(?), updated_at = ? WHERE collection = ? AND id = ?",
        (_encode(body, max_bytes), time.time(), collection, doc_id),
    )
    return get(conn, collection, doc_id)


def patch(conn: Any, collection: str, doc_id: str, merge: Any, max_bytes: int) -> dict[str, Any]:
    get(conn, collection, doc_id)
    conn.execute(
        "UPDATE __memoturn_docs SET body = jsonb(json_patch(json(body), ?)), updated_at = ?"
        " WHERE collection = ? AND id = ?",
        (_encode(merge, max_bytes), time.time(), collection, doc_id),
    )
    doc = get(conn, collection, doc_id)
    _encode(doc["body"], max_bytes)  # the patched document obeys the limit too (else the transaction rolls back)
    return doc


def delete(conn: Any, collection: str, doc_id: str) -> None:
    get(conn, collection, doc_id)
    conn.execute("DELETE FROM __memoturn_docs WHERE collection = ? AND id = ?", (collection, doc_id))


def _exists(conn: Any) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '__memoturn_docs'").fetchone() is not None


def collections(conn: Any) -> list[dict[str, Any]]:
    """Every collection that holds a document, with its document count (name order)."""
    if not _exists(conn):
        return []
    rows = conn.execute(
        "SELECT collection, COUNT(*) FROM __memoturn_docs GROUP BY collection ORDER BY collection"
    ).fetchall()
    return [{"name": name, "documents": count} for name, count in rows]


def query(
    conn: Any,
    collection: str,
    *,
    filter: dict[str, Any] | None,
    sort: list[dict[str, str]] | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    if not _exists(conn):
        return [], None
    params: list[Any] = [collection]
    where = compile_filter(filter or {}, params)
    order = []
    for s in sort or []:
        direction = s.get("order", "asc").lower()
        if direction not in ("asc", "desc"):
            raise BadRequest("sort order is 'asc' or 'desc'", type="invalid-sort")
        order.append(f"json_extract(body, '{json_path(s.get('path', ''))}') {direction.upper()}")
    order.append("id ASC")
    offset: Any = 0  # JSON from the client until the exact-int check below
    if cursor:
        try:
            offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"]
        except (ValueError, KeyError, TypeError):
            offset = None
        if type(offset) is not int or not 0 <= offset < 2**63:  # else SQLite refuses it: a 500
            raise BadRequest("invalid cursor", type="invalid-cursor")
    rows = conn.execute(
        f"SELECT id, json(body), created_at, updated_at FROM __memoturn_docs WHERE collection = ? AND {where}"
        f" ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
        (*params, limit + 1, offset),
    ).fetchall()
    nxt = None
    if len(rows) > limit:
        nxt = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit}).encode()).decode()
    return [_row(r) for r in rows[:limit]], nxt


def create_index(conn: Any, collection: str, path: str) -> str:
    """An expression index on one path of one collection (idempotent); returns its name."""
    ensure(conn)
    jp = json_path(path)
    name = "__memoturn_docidx_" + hashlib.sha256(f"{collection}\0{jp}".encode()).hexdigest()[:16]
    conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON __memoturn_docs(collection, json_extract(body, '{jp}'))")
    return name
