"""Typed, directed relationships between the memories of one profile, and their traversal.

A relationship ``source -[type]-> target`` (``relates_to``, ``caused_by``, ``part_of``,
``contradicts``, ``follows`` or any ``[a-z][a-z0-9_]*`` of up to 64 characters) has an optional
``weight`` (0..1, its strength: recall expansion multiplies by it) and ``properties`` (a JSON
object). It lives in the reserved ``__memoturn_relationships`` table of the profile's own
database file, so it forks, rewinds and replicates with the memories.

* **Time.** Removing a relationship sets its ``removed_at`` (the row stays), so ``as_of`` sees
  the relationships as they were: those created at or before it and not yet removed. An
  endpoint must be visible too: current, or current at ``as_of``, or any with
  ``include_superseded``.
* **Forgetting a memory** deletes every relationship to or from it, removed ones included (a
  trigger on the memory table): forgetting leaves no history, for the memory or its links.
* **Traversal** is recursive SQL in the profile's file: neighbours (by type and direction), the
  shortest path between two memories (breadth first, at most :data:`MAX_PATH_DEPTH` hops), and
  the subgraph around a memory (at most :data:`MAX_SUBGRAPH_DEPTH` hops and
  :data:`MAX_SUBGRAPH_NODES` memories). Every walk stops after :data:`WALK_ROWS` rows, so a dense
  graph costs bounded work (the answer then says ``truncated``).
* **Recall expansion** (:func:`expand`): the neighbours of the hits along the named types, one
  hop, scored ``parent score * decay * weight``, merged into the hits; each says ``via``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Literal

import numpy as np

from ..errors import BadRequest, NotFound
from . import memories

Direction = Literal["out", "in", "both"]
DIRECTIONS = ("out", "in", "both")
SUGGESTED_TYPES = ("relates_to", "caused_by", "part_of", "contradicts", "follows")
_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_PATH_DEPTH = 6
MAX_SUBGRAPH_DEPTH = 4
MAX_SUBGRAPH_NODES = 500
MAX_NEIGHBOURS = 1000
#: Rows a recursive walk may produce before it stops (bounds the work on a dense graph).
WALK_ROWS = 20_000
#: Recall expansion: a neighbour's score is its hit's score times this (times the weight).
DEFAULT_EXPAND_DECAY = 0.5
_SEP = "\x1f"  # joins ids along a walk; no id holds it (they are checked to exist)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS __memoturn_relationships("
    " id TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL, type TEXT NOT NULL, weight REAL,"
    " properties TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, removed_at REAL)",
    "CREATE INDEX IF NOT EXISTS __memoturn_relationships_source ON __memoturn_relationships(source, type)",
    "CREATE INDEX IF NOT EXISTS __memoturn_relationships_target ON __memoturn_relationships(target, type)",
    # one live relationship of a type between two memories
    "CREATE UNIQUE INDEX IF NOT EXISTS __memoturn_relationships_live"
    " ON __memoturn_relationships(source, target, type) WHERE removed_at IS NULL",
    "CREATE TRIGGER IF NOT EXISTS __memoturn_relationships_forget AFTER DELETE ON __memoturn_memories BEGIN"
    " DELETE FROM __memoturn_relationships WHERE source = old.id OR target = old.id; END",
]

_COLUMNS = "r.id, r.type, r.source, r.target, r.weight, r.properties, r.created_at, r.removed_at"


def check_type(type_: str) -> str:
    if not isinstance(type_, str) or not _TYPE.match(type_):
        raise BadRequest(
            f"invalid relationship type {type_!r}: 1-64 characters of a-z, 0-9 and '_', starting with a letter"
            f" (e.g. {', '.join(SUGGESTED_TYPES)})",
            type="invalid-relationship-type",
        )
    return type_


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise BadRequest(f"direction must be one of {', '.join(DIRECTIONS)}", type="invalid-direction")
    return direction


def has_relationships(conn: Any) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '__memoturn_relationships'").fetchone() is not None


def ensure_schema(conn: Any) -> None:
    """Create the relationship table (inside the caller's write transaction; memories exist)."""
    if not has_relationships(conn):
        for statement in SCHEMA:
            conn.execute(statement)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    id_, type_, source, target, weight, properties, created_at, removed_at = row[:8]
    return {
        "id": id_,
        "type": type_,
        "source": source,
        "target": target,
        "weight": weight,
        "properties": json.loads(properties),
        "created_at": created_at,
        "removed_at": removed_at,
    }


def _memory_exists(conn: Any, memory_id: str, role: str) -> None:
    found = memories.has_memories(conn) and (
        conn.execute("SELECT 1 FROM __memoturn_memories WHERE id = ?", (memory_id,)).fetchone() is not None
    )
    if not found:
        raise NotFound(f"memory {memory_id!r} ({role}) not found in this profile", type="memory-not-found")


def relate(
    conn: Any,
    source: str,
    target: str,
    type_: str,
    *,
    weight: float | None = None,
    properties: dict[str, Any] | None = None,
    now: float | None = None,
) -> tuple[dict[str, Any], bool]:
    """Link ``source -[type_]-> target`` (inside a write transaction); return it and whether
    an identical live one (same source, target and type) existed already, which is returned
    unchanged."""
    check_type(type_)
    if source == target:
        raise BadRequest("a relationship links two different memories", type="self-relationship")
    if weight is not None and not 0.0 <= weight <= 1.0:
        raise BadRequest("weight is between 0 and 1", type="invalid-weight")
    _memory_exists(conn, source, "source")
    _memory_exists(conn, target, "target")
    ensure_schema(conn)
    existing = conn.execute(
        f"SELECT {_COLUMNS} FROM __memoturn_relationships r"
        " WHERE r.source = ? AND r.target = ? AND r.type = ? AND r.removed_at IS NULL",
        (source, target, type_),
    ).fetchone()
    if existing is not None:
        return _row(existing), True
    rel_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO __memoturn_relationships(id, source, target, type, weight, properties, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            rel_id,
            source,
            target,
            type_,
            weight,
            json.dumps(properties or {}, separators=(",", ":")),
            time.time() if now is None else now,
        ),
    )
    return get(conn, rel_id), False


def get(conn: Any, rel_id: str) -> dict[str, Any]:
    row = (
        conn.execute(f"SELECT {_COLUMNS} FROM __memoturn_relationships r WHERE r.id = ?", (rel_id,)).fetchone()
        if has_relationships(conn)
        else None
    )
    if row is None:
        raise NotFound(f"relationship {rel_id!r} not found", type="relationship-not-found")
    return _row(row)


def live(conn: Any, *, after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The live (not removed) relationships in id order, those after ``after``: a page for export."""
    if not has_relationships(conn):
        return []
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM __memoturn_relationships r WHERE r.removed_at IS NULL AND r.id > ?"
        " ORDER BY r.id LIMIT ?",
        (after or "", limit),
    ).fetchall()
    return [_row(row) for row in rows]


def unrelate(conn: Any, rel_id: str, now: float | None = None) -> dict[str, Any]:
    """Remove a live relationship: it stays visible ``as_of`` a time before now."""
    rel = get(conn, rel_id)
    if rel["removed_at"] is not None:
        raise NotFound(f"relationship {rel_id!r} was removed already", type="relationship-not-found")
    conn.execute(
        "UPDATE __memoturn_relationships SET removed_at = ? WHERE id = ?", (time.time() if now is None else now, rel_id)
    )
    return get(conn, rel_id)


def _visible_relationships(types: list[str] | None, as_of: float | None) -> tuple[str, list[Any]]:
    """SQL (alias ``r``) for the relationships of ``types`` that exist now, or at ``as_of``."""
    where: list[str] = []
    params: list[Any] = []
    if types:
        for t in types:
            check_type(t)
        where.append(f"r.type IN ({','.join('?' * len(types))})")
        params += types
    if as_of is not None:
        where.append("r.created_at <= ? AND (r.removed_at IS NULL OR r.removed_at > ?)")
        params += [as_of, as_of]
    else:
        where.append("r.removed_at IS NULL")
    return " AND ".join(where), params


def _visible_memories(as_of: float | None, include_superseded: bool) -> tuple[str, list[Any]]:
    """SQL (alias ``m``) for the memories a walk may reach: current, current at ``as_of``, or all."""
    where, params = memories.visibility(as_of=as_of, include_superseded=include_superseded)
    return (" AND ".join(where) or "1"), params


def _step(direction: str) -> tuple[str, str]:
    """The join of ``r`` to a walk at ``w.node``, and the expression of the node it leads to."""
    check_direction(direction)
    if direction == "out":
        return "r.source = w.node", "r.target"
    if direction == "in":
        return "r.target = w.node", "r.source"
    return "(r.source = w.node OR r.target = w.node)", "CASE WHEN r.source = w.node THEN r.target ELSE r.source END"


def neighbours(
    conn: Any,
    memory_id: str,
    *,
    types: list[str] | None = None,
    direction: str = "both",
    limit: int = 100,
    as_of: float | None = None,
    include_superseded: bool = False,
) -> list[dict[str, Any]]:
    """The relationships of ``memory_id`` (of ``types``, in ``direction``) with the memory at
    their other end: ``[{"relationship", "direction" ("out"/"in"), "memory"}]``, newest first."""
    memories.get(conn, memory_id)
    if not has_relationships(conn):
        return []
    check_direction(direction)
    rel_sql, rel_params = _visible_relationships(types, as_of)
    mem_sql, mem_params = _visible_memories(as_of, include_superseded)
    sides = []
    if direction in ("out", "both"):
        sides.append(("out", "r.source = ?", "r.target"))
    if direction in ("in", "both"):
        sides.append(("in", "r.target = ?", "r.source"))
    out: list[dict[str, Any]] = []
    for side, anchor, other in sides:
        rows = conn.execute(
            f"SELECT {_COLUMNS}, {memories.COLUMNS_M} FROM __memoturn_relationships r"
            f" JOIN __memoturn_memories m ON m.id = {other}"
            f" WHERE {anchor} AND {rel_sql} AND {mem_sql} ORDER BY r.created_at DESC, r.id LIMIT ?",
            (memory_id, *rel_params, *mem_params, limit),
        ).fetchall()
        out += [{"relationship": _row(row), "direction": side, "memory": memories.row_dict(row[8:])} for row in rows]
    out.sort(key=lambda n: (-n["relationship"]["created_at"], n["relationship"]["id"]))
    return out[:limit]


def path(
    conn: Any,
    source: str,
    target: str,
    *,
    max_depth: int = 4,
    types: list[str] | None = None,
    direction: str = "out",
    as_of: float | None = None,
    include_superseded: bool = False,
) -> dict[str, Any]:
    """A shortest path ``source`` → ``target`` (breadth first, at most ``max_depth`` hops):
    ``{"found", "depth", "memories" (source..target), "relationships" (one per hop), "truncated"}``."""
    if not 1 <= max_depth <= MAX_PATH_DEPTH:
        raise BadRequest(f"max_depth is 1..{MAX_PATH_DEPTH}", type="invalid-depth")
    memories.get(conn, source)
    memories.get(conn, target)
    empty: dict[str, Any] = {"found": False, "depth": None, "memories": [], "relationships": [], "truncated": False}
    if source == target:
        return {**empty, "found": True, "depth": 0, "memories": [memories.get(conn, source)]}
    if not has_relationships(conn):
        return empty
    join, nxt = _step(direction)
    rel_sql, rel_params = _visible_relationships(types, as_of)
    mem_sql, mem_params = _visible_memories(as_of, include_superseded)
    sql = (
        "WITH RECURSIVE walk(node, depth, trail, rels) AS ("
        " SELECT ?, 0, ? || ? || ?, ''"
        " UNION ALL"
        f" SELECT {nxt}, w.depth + 1, w.trail || {nxt} || ?, w.rels || r.id || ?"
        f" FROM walk w JOIN __memoturn_relationships r ON {join} JOIN __memoturn_memories m ON m.id = {nxt}"
        f" WHERE w.depth < ? AND w.node <> ? AND instr(w.trail, ? || {nxt} || ?) = 0 AND {rel_sql} AND {mem_sql}"
        " LIMIT ?)"
        " SELECT node, depth, trail, rels FROM walk"
    )
    params = [
        source,
        _SEP,
        source,
        _SEP,
        _SEP,
        _SEP,
        max_depth,
        target,
        _SEP,
        _SEP,
        *rel_params,
        *mem_params,
        WALK_ROWS,
    ]
    rows = 0
    found = None
    cursor = conn.execute(sql, params)
    while found is None and (batch := cursor.fetchmany(256)):
        for node, depth, trail, rels in batch:
            rows += 1
            if node == target:
                found = (depth, trail, rels)
                break  # breadth first: the first arrival is a shortest path
    if found is None:
        return {**empty, "truncated": rows >= WALK_ROWS}
    depth, trail, rels = found
    ids = [x for x in trail.split(_SEP) if x]
    rel_ids = [x for x in rels.split(_SEP) if x]
    return {
        "found": True,
        "depth": depth,
        "memories": [memories.get(conn, i) for i in ids],
        "relationships": [get(conn, i) for i in rel_ids],
        "truncated": False,
    }


def subgraph(
    conn: Any,
    memory_id: str,
    *,
    depth: int = 2,
    limit: int = 50,
    types: list[str] | None = None,
    direction: str = "both",
    as_of: float | None = None,
    include_superseded: bool = False,
) -> dict[str, Any]:
    """The memories within ``depth`` hops of ``memory_id`` (nearest first, at most ``limit``)
    and the relationships among them: ``{"memories": [{"memory", "depth"}], "relationships",
    "truncated"}``."""
    if not 1 <= depth <= MAX_SUBGRAPH_DEPTH:
        raise BadRequest(f"depth is 1..{MAX_SUBGRAPH_DEPTH}", type="invalid-depth")
    if not 1 <= limit <= MAX_SUBGRAPH_NODES:
        raise BadRequest(f"limit is 1..{MAX_SUBGRAPH_NODES}", type="invalid-limit")
    start = memories.get(conn, memory_id)
    if not has_relationships(conn):
        return {"memories": [{"memory": start, "depth": 0}], "relationships": [], "truncated": False}
    join, nxt = _step(direction)
    rel_sql, rel_params = _visible_relationships(types, as_of)
    mem_sql, mem_params = _visible_memories(as_of, include_superseded)
    walked = conn.execute(
        "WITH RECURSIVE reach(node, depth) AS ("
        " SELECT ?, 0"
        " UNION"
        f" SELECT {nxt}, w.depth + 1 FROM reach w JOIN __memoturn_relationships r ON {join}"
        f" JOIN __memoturn_memories m ON m.id = {nxt} WHERE w.depth < ? AND {rel_sql} AND {mem_sql}"
        " LIMIT ?)"
        " SELECT node, depth FROM reach",
        (memory_id, depth, *rel_params, *mem_params, WALK_ROWS),
    ).fetchall()
    nearest: dict[str, int] = {}
    for node, d in walked:
        nearest[node] = min(d, nearest.get(node, d))
    ordered = sorted(nearest.items(), key=lambda item: (item[1], item[0] != memory_id, item[0]))
    truncated = len(ordered) > limit or len(walked) >= WALK_ROWS
    rows = ordered[:limit]
    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    found = {
        r[0]: memories.row_dict(r)
        for r in conn.execute(
            f"SELECT {memories.COLUMNS_M} FROM __memoturn_memories m WHERE m.id IN ({marks})", ids
        ).fetchall()
    }
    rels = conn.execute(
        f"SELECT {_COLUMNS} FROM __memoturn_relationships r"
        f" WHERE r.source IN ({marks}) AND r.target IN ({marks}) AND {rel_sql} ORDER BY r.created_at, r.id",
        (*ids, *ids, *rel_params),
    ).fetchall()
    return {
        "memories": [{"memory": found[i], "depth": d} for i, d in rows if i in found],
        "relationships": [_row(r) for r in rels],
        "truncated": truncated,
    }


def expand(
    conn: Any,
    hits: list[dict[str, Any]],
    *,
    along: list[str],
    limit: int,
    direction: str = "both",
    decay: float = DEFAULT_EXPAND_DECAY,
    vector: np.ndarray | None = None,
    filters: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Recall hits with their neighbours (one hop along the types ``along``) merged in, best ``limit``.

    A neighbour that is not a hit already scores ``parent score * decay * weight`` (weight 1 if
    unset; the best parent if several) and says ``via``: ``{"relationship", "type", "from",
    "direction"}``. Neighbours pass the same filters as recall (``filters``: types, tags,
    since, until, metadata, as_of, include_superseded) but not the relevance floor: a
    relationship, not the query, is why they are there.
    """
    for t in along:
        check_type(t)
    check_direction(direction)
    filters = filters or {}
    if not hits or not along or not has_relationships(conn):
        return hits
    rel_sql, rel_params = _visible_relationships(along, filters.get("as_of"))
    where, mem_params = memories.visibility(**filters)
    mem_sql = " AND ".join(where) or "1"
    by_id = {h["memory"]["id"]: h for h in hits}
    ids = list(by_id)
    marks = ",".join("?" * len(ids))
    sides = []
    if direction in ("out", "both"):
        sides.append(("out", "r.source", "r.target"))
    if direction in ("in", "both"):
        sides.append(("in", "r.target", "r.source"))
    best: dict[str, dict[str, Any]] = {}
    for side, anchor, other in sides:
        rows = conn.execute(
            f"SELECT r.id, r.type, {anchor}, r.weight, m.rowid, {memories.COLUMNS_M}"
            f" FROM __memoturn_relationships r JOIN __memoturn_memories m ON m.id = {other}"
            f" WHERE {anchor} IN ({marks}) AND {rel_sql} AND {mem_sql}",
            (*ids, *rel_params, *mem_params),
        ).fetchall()
        for rel_id, rel_type, parent, weight, rowid, *memory_row in rows:
            memory = memories.row_dict(tuple(memory_row))
            if memory["id"] in by_id:
                continue
            score = by_id[parent]["score"] * decay * (1.0 if weight is None else weight)
            if memory["id"] not in best or score > best[memory["id"]]["score"]:
                best[memory["id"]] = {
                    "memory": memory,
                    "score": score,
                    "ranks": {},
                    "similarity": None,
                    "text_match": False,
                    "text_score": None,
                    "via": {"relationship": rel_id, "type": rel_type, "from": parent, "direction": side},
                    "_rowid": rowid,
                }
    if not best:
        return hits
    if vector is not None:
        sims = memories.similarities(conn, [b["_rowid"] for b in best.values()], vector)
        for b in best.values():
            b["similarity"] = sims.get(b["_rowid"])
    for b in best.values():
        del b["_rowid"]
    merged = hits + list(best.values())
    merged.sort(key=lambda h: h["score"], reverse=True)  # stable: a hit before a neighbour of equal score
    return merged[:limit]
