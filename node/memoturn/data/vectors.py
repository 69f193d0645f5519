"""Vector collections: a small API over libSQL ``F32_BLOB`` columns and DiskANN indexes.

Each collection is one reserved table ``__memoturn_vec_{name}`` (``id``, ``vector
F32_BLOB(dim)``, ``metadata`` JSON) with a ``libsql_vector_idx`` cosine index; the
dimension is fixed at creation. ``query`` takes the approximate neighbours from the index
(over-fetched when a metadata filter is given), orders them by exact cosine distance and
returns ``score = 1 - distance``. User tables can hold ``F32_BLOB`` columns and DiskANN
indexes through plain SQL as well; this API is the convenience for the common case.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import BadRequest, Conflict, NotFound
from .documents import compile_filter
from .embedding import check_vector

_NAME = re.compile(r"^[a-z0-9_]{1,48}$")


def _table(name: str) -> str:
    if not _NAME.match(name or ""):
        raise BadRequest(f"invalid vector collection name {name!r}: 1-48 of a-z, 0-9, '_'", type="invalid-name")
    return f"__memoturn_vec_{name}"


def dim(conn: Any, name: str) -> int:
    table = _table(name)
    row = conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if row is None:
        raise NotFound(f"vector collection {name!r} does not exist", type="collection-not-found")
    return int(re.search(r"F32_BLOB\((\d+)\)", row[0]).group(1))  # type: ignore[union-attr]  # our CREATE TABLE always has F32_BLOB(n)


def create(conn: Any, name: str, dimensions: int) -> None:
    table = _table(name)
    if not 1 <= dimensions <= 4096:
        raise BadRequest("dimensions must be 1-4096", type="invalid-dimensions")
    if conn.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (table,)).fetchone():
        raise Conflict(f"vector collection {name!r} already exists", type="already-exists")
    conn.execute(
        f"CREATE TABLE {table}(id TEXT PRIMARY KEY, vector F32_BLOB({dimensions}) NOT NULL,"
        " metadata TEXT NOT NULL DEFAULT '{}')"
    )
    conn.execute(f"CREATE INDEX {table}_idx ON {table}(libsql_vector_idx(vector, 'metric=cosine'))")


def _vector(values: Any, d: int) -> bytes:
    v = check_vector(values, d, what="vector", owner="the collection has")
    if not v.any():  # cosine distance to it is NULL: it could never be found, and a query by it finds nothing
        raise BadRequest("the zero vector has no direction (the collection's metric is cosine)", type="invalid-vector")
    return v.tobytes()


def upsert(conn: Any, name: str, items: list[dict[str, Any]]) -> int:
    table, d = _table(name), dim(conn, name)
    rows = [
        (str(i["id"]), _vector(i["vector"], d), json.dumps(i.get("metadata") or {}, separators=(",", ":")))
        for i in items
    ]
    for row in rows:
        conn.execute(
            f"INSERT INTO {table}(id, vector, metadata) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " vector = excluded.vector, metadata = excluded.metadata",
            row,
        )
    return len(rows)


def remove(conn: Any, name: str, item_id: str) -> None:
    table = _table(name)
    dim(conn, name)
    if not conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (item_id,)).fetchone():
        raise NotFound(f"no vector {item_id!r} in {name!r}", type="vector-not-found")
    conn.execute(f"DELETE FROM {table} WHERE id = ?", (item_id,))


def query(conn: Any, name: str, vector: Any, k: int, filter: dict[str, Any] | None) -> list[dict[str, Any]]:
    table, d = _table(name), dim(conn, name)
    blob = _vector(vector, d)
    params: list[Any] = []
    # Metadata filters reuse the document filter language, over the metadata column.
    where = (
        compile_filter(filter or {}, params)
        .replace("json_extract(body,", "json_extract(v.metadata,")
        .replace("json_type(body,", "json_type(v.metadata,")
    )
    fetch = k * (10 if filter else 2)
    rows = conn.execute(
        f"SELECT v.id, vector_distance_cos(v.vector, ?) AS d, v.metadata FROM vector_top_k('{table}_idx', ?, ?) t"
        f" JOIN {table} v ON v.rowid = t.id WHERE d IS NOT NULL AND {where} ORDER BY d LIMIT ?",
        (blob, blob, fetch, *params, k),
    ).fetchall()
    return [{"id": r[0], "score": 1.0 - float(r[1]), "metadata": json.loads(r[2])} for r in rows]
