"""Typed agent memories in the reserved ``__memoturn_memories`` tables of a profile database.

A memory has a type (``fact``, ``preference``, ``event``, ``instruction``, ``episode`` or any
user-defined ``[a-z][a-z0-9_-]*``), content, metadata (JSON object), tags, an optional
subject key, two times (bitemporal: ``event_time`` when it happened or became true,
``recorded_at`` when it was stored) and an embedding.

* **Supersession**: a new memory with the same ``subject`` as a current one, or naming it in
  ``supersedes``, closes the old one's validity (``valid_to`` = the new one's ``valid_from``,
  ``superseded_by`` = the new id). Recall returns current memories unless asked ``as_of`` a
  past time or ``include_superseded``. ``history`` lists a subject's chain.
* **Duplicates**: a memory whose type, subject and content hash equal a current memory's is not
  stored again; the existing one is returned with ``duplicate: true``.
* **Hybrid recall**: FTS5 BM25 over content and tags (stopwords dropped from the query, and
  matches that score no better than a term every row contains ignored), and exact vector
  similarity (:mod:`memoturn.data.vector_cache`: an in-memory matrix per profile), each over-fetched, filtered in SQL (types, tags, time
  range, metadata equality, validity), then fused by reciprocal rank fusion
  (``score = Σ 1 / (60 + rank)``); optional recency weighting multiplies by
  ``exp(-age / half_life * ln 2)``-style decay.
* **Relevance floor**: fused scores only order hits (every memory gets one, related or not),
  so each hit also carries scores a caller can interpret: ``similarity`` (cosine between the
  query's and the memory's embeddings), ``text_match`` and ``text_score`` (BM25, > 0 when the
  text query matched). A hit is kept if ``similarity >= min_score`` or its text matched;
  ``min_score`` 0 turns the floor off. The default, :data:`DEFAULT_MIN_SCORE`, was chosen on
  the LoCoMo dev split (``bench/recall.py``, ``docs/memory.md``).

The tables are created on the first memory write, with the profile's embedding dimension
(recorded in ``__memoturn_meta``; a vector of another dimension is a 400).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from typing import Any

import numpy as np

from ..errors import BadRequest, NotFound
from .vector_cache import VectorCache

_DEFAULT_CACHE = VectorCache()

BUILTIN_TYPES = ("fact", "preference", "event", "instruction", "episode")
_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
RRF_K = 60
#: The default relevance floor on the cosine similarity of a hit (when its text did not match).
#: Chosen on the LoCoMo dev split with ``python -m bench.recall`` (the sweep in
#: ``bench/results/recall.json``, table in ``docs/memory.md``) for all-MiniLM-L6-v2.
DEFAULT_MIN_SCORE = 0.3


def schema(dim: int) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS __memoturn_memories("
        " id TEXT PRIMARY KEY, type TEXT NOT NULL, content TEXT NOT NULL,"
        " metadata TEXT NOT NULL DEFAULT '{}', tags TEXT NOT NULL DEFAULT '[]', subject TEXT,"
        " content_hash TEXT NOT NULL, event_time REAL, valid_from REAL NOT NULL, valid_to REAL,"
        " recorded_at REAL NOT NULL, supersedes TEXT, superseded_by TEXT,"
        f" embedding F32_BLOB({int(dim)}))",
        "CREATE INDEX IF NOT EXISTS __memoturn_memories_subject ON __memoturn_memories(subject, valid_to)",
        "CREATE INDEX IF NOT EXISTS __memoturn_memories_hash ON __memoturn_memories(content_hash)",
        "CREATE INDEX IF NOT EXISTS __memoturn_memories_current ON __memoturn_memories(valid_to, recorded_at)",
        "CREATE VIRTUAL TABLE IF NOT EXISTS __memoturn_memories_fts USING fts5("
        " content, tags, content='__memoturn_memories', content_rowid='rowid', tokenize='porter unicode61')",
        "CREATE TRIGGER IF NOT EXISTS __memoturn_memories_ai AFTER INSERT ON __memoturn_memories BEGIN"
        " INSERT INTO __memoturn_memories_fts(rowid, content, tags) VALUES (new.rowid, new.content, new.tags); END",
        "CREATE TRIGGER IF NOT EXISTS __memoturn_memories_ad AFTER DELETE ON __memoturn_memories BEGIN"
        " INSERT INTO __memoturn_memories_fts(__memoturn_memories_fts, rowid, content, tags)"
        " VALUES ('delete', old.rowid, old.content, old.tags); END",
    ]


def profile_dim(conn: Any) -> int | None:
    row = conn.execute("SELECT value FROM __memoturn_meta WHERE key = 'embedding_dim'").fetchone()
    return int(row[0]) if row else None


def ensure_schema(conn: Any, dim: int, embedder: str) -> None:
    """Create the memory tables for ``dim`` (inside the caller's write transaction)."""
    current = profile_dim(conn)
    if current is not None:
        if current != dim:
            raise BadRequest(
                f"this profile stores {current}-dimensional embeddings, not {dim}", type="dimension-mismatch"
            )
        return
    for statement in schema(dim):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO __memoturn_meta(key, value) VALUES ('embedding_dim', ?), ('embedder', ?)", (str(dim), embedder)
    )


def check_type(type_: str) -> str:
    if not isinstance(type_, str) or not _TYPE.match(type_):
        raise BadRequest(
            f"invalid memory type {type_!r}: use a-z, 0-9, '_' or '-' (built in: {', '.join(BUILTIN_TYPES)})",
            type="invalid-type",
        )
    return type_


def content_hash(type_: str, subject: str | None, content: str) -> str:
    return hashlib.sha256(f"{type_}\0{subject or ''}\0{content.strip()}".encode()).hexdigest()


_COLUMNS = (
    "id, type, content, metadata, tags, subject, event_time, valid_from, valid_to, recorded_at, "
    "supersedes, superseded_by"
)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    (
        id_,
        type_,
        content,
        metadata,
        tags,
        subject,
        event_time,
        valid_from,
        valid_to,
        recorded_at,
        supersedes,
        superseded_by,
    ) = row[:12]
    return {
        "id": id_,
        "type": type_,
        "content": content,
        "metadata": json.loads(metadata),
        "tags": json.loads(tags),
        "subject": subject,
        "event_time": event_time,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "recorded_at": recorded_at,
        "supersedes": supersedes,
        "superseded_by": superseded_by,
        "current": valid_to is None,
    }


def add(conn: Any, item: dict[str, Any], vector: np.ndarray, now: float | None = None) -> tuple[dict[str, Any], bool]:
    """Store one memory (inside a write transaction); return it and whether it was a duplicate."""
    now = time.time() if now is None else now
    type_ = check_type(item.get("type", "fact"))
    content = item["content"]
    subject = item.get("subject")
    digest = content_hash(type_, subject, content)
    dup = conn.execute(
        f"SELECT {_COLUMNS} FROM __memoturn_memories WHERE content_hash = ? AND valid_to IS NULL LIMIT 1", (digest,)
    ).fetchone()
    if dup is not None:
        return _row(dup), True
    event_time = item.get("event_time")
    valid_from = event_time if event_time is not None else now
    memory_id = item.get("id") or uuid.uuid4().hex
    supersedes = item.get("supersedes")
    old_ids: list[str] = []
    if supersedes:
        row = conn.execute("SELECT id, valid_to FROM __memoturn_memories WHERE id = ?", (supersedes,)).fetchone()
        if row is None:
            raise NotFound(f"memory {supersedes!r} (named in supersedes) does not exist", type="memory-not-found")
        if row[1] is not None:
            raise BadRequest(f"memory {supersedes!r} is already superseded", type="already-superseded")
        old_ids.append(supersedes)
    if subject:
        old_ids += [
            r[0]
            for r in conn.execute(
                "SELECT id FROM __memoturn_memories WHERE subject = ? AND valid_to IS NULL", (subject,)
            ).fetchall()
            if r[0] not in old_ids
        ]
    conn.execute(
        "INSERT INTO __memoturn_memories(id, type, content, metadata, tags, subject, content_hash, event_time,"
        " valid_from, valid_to, recorded_at, supersedes, superseded_by, embedding)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, ?)",
        (
            memory_id,
            type_,
            content,
            json.dumps(item.get("metadata") or {}, separators=(",", ":")),
            json.dumps(item.get("tags") or [], separators=(",", ":")),
            subject,
            digest,
            event_time,
            valid_from,
            now,
            old_ids[0] if old_ids else None,
            vector.astype(np.float32).tobytes(),
        ),
    )
    for old in old_ids:
        conn.execute(
            "UPDATE __memoturn_memories SET valid_to = ?, superseded_by = ? WHERE id = ?",
            (max(valid_from, now) if event_time is None else valid_from, memory_id, old),
        )
    row = conn.execute(f"SELECT {_COLUMNS} FROM __memoturn_memories WHERE id = ?", (memory_id,)).fetchone()
    return _row(row), False


def has_memories(conn: Any) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '__memoturn_memories'").fetchone() is not None


def get(conn: Any, memory_id: str) -> dict[str, Any]:
    row = (
        conn.execute(f"SELECT {_COLUMNS} FROM __memoturn_memories WHERE id = ?", (memory_id,)).fetchone()
        if has_memories(conn)
        else None
    )
    if row is None:
        raise NotFound(f"memory {memory_id!r} not found", type="memory-not-found")
    return _row(row)


def history(conn: Any, memory_id: str) -> list[dict[str, Any]]:
    """The supersession chain through ``memory_id``, oldest first."""
    start = get(conn, memory_id)
    chain = [start]
    cur = start
    while cur["supersedes"]:
        cur = get(conn, cur["supersedes"])
        chain.insert(0, cur)
    cur = start
    while cur["superseded_by"]:
        cur = get(conn, cur["superseded_by"])
        chain.append(cur)
    return chain


def forget(conn: Any, memory_id: str) -> None:
    get(conn, memory_id)
    conn.execute("DELETE FROM __memoturn_memories WHERE id = ?", (memory_id,))
    # Rowids may be reused after a delete: tell vector caches to rebuild.
    conn.execute(
        "INSERT INTO __memoturn_meta(key, value) VALUES ('memory_deletes', '1') ON CONFLICT(key) DO UPDATE"
        " SET value = CAST(value AS INTEGER) + 1"
    )


def list_memories(
    conn: Any,
    *,
    types: list[str] | None,
    include_superseded: bool,
    limit: int,
    after: str | None,
    tags: list[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    as_of: float | None = None,
) -> list[dict[str, Any]]:
    """Memories in id order after the cursor ``after``, filtered as recall filters them."""
    where, params = _filters(
        types=types, tags=tags, since=since, until=until, as_of=as_of, include_superseded=include_superseded
    )
    if not has_memories(conn):
        return []
    if after:
        where.append("m.id > ?")
        params.append(after)
    sql = f"SELECT {_COLUMNS} FROM __memoturn_memories m WHERE {' AND '.join(where) or '1'} ORDER BY m.id LIMIT ?"
    return [_row(r) for r in conn.execute(sql, (*params, limit)).fetchall()]


def forget_matching(
    conn: Any,
    *,
    types: list[str] | None = None,
    tags: list[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Delete every memory (current or superseded) of these types, with all these tags, whose
    event time (else record time) is in ``[since, until]``; return their ids, in id order.

    ``dry_run`` deletes nothing. No filter at all is a 400: deleting a whole profile is ``DELETE``
    of the profile, not a filter that forgot its arguments.
    """
    if not types and not tags and since is None and until is None:
        raise BadRequest("give at least one of types, tags, since, until", type="empty-filter")
    where, params = _filters(types=types, tags=tags, since=since, until=until, include_superseded=True)
    if not has_memories(conn):
        return []
    cond = " AND ".join(where)
    rows = conn.execute(f"SELECT m.id FROM __memoturn_memories m WHERE {cond} ORDER BY m.id", params).fetchall()
    ids = [r[0] for r in rows]
    if ids and not dry_run:
        conn.execute(
            f"DELETE FROM __memoturn_memories WHERE id IN (SELECT m.id FROM __memoturn_memories m WHERE {cond})", params
        )
        # Rowids may be reused after a delete: tell vector caches to rebuild (as forget does).
        conn.execute(
            "INSERT INTO __memoturn_meta(key, value) VALUES ('memory_deletes', '1') ON CONFLICT(key) DO UPDATE"
            " SET value = CAST(value AS INTEGER) + 1"
        )
    return ids


def _filters(
    *,
    types: list[str] | None = None,
    tags: list[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    metadata: dict[str, Any] | None = None,
    as_of: float | None = None,
    include_superseded: bool = False,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if types:
        for t in types:
            check_type(t)
        where.append(f"m.type IN ({','.join('?' * len(types))})")
        params += types
    for tag in tags or []:
        where.append("EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?)")
        params.append(tag)
    if since is not None and until is not None and since > until:
        raise BadRequest(f"since ({since}) is after until ({until})", type="invalid-window")
    if since is not None:
        where.append("COALESCE(m.event_time, m.recorded_at) >= ?")
        params.append(since)
    if until is not None:
        where.append("COALESCE(m.event_time, m.recorded_at) <= ?")
        params.append(until)
    for key, value in (metadata or {}).items():
        if not _META_KEY.match(key):
            raise BadRequest(f"invalid metadata filter key {key!r}", type="invalid-filter")
        if isinstance(value, (dict, list)):
            raise BadRequest("metadata filters compare scalar values", type="invalid-filter")
        where.append(f"json_extract(m.metadata, '$.\"{key}\"') IS ?")
        params.append(value if not isinstance(value, bool) else int(value))
    if as_of is not None:
        where.append("m.recorded_at <= ? AND m.valid_from <= ? AND (m.valid_to IS NULL OR m.valid_to > ?)")
        params += [as_of, as_of, as_of]
    elif not include_superseded:
        where.append("m.valid_to IS NULL")
    return where, params


_WORD = re.compile(r"\w+", re.UNICODE)
# English function words: they match nearly every memory and only add noise to BM25.
STOPWORDS = frozenset(
    """
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves
""".split()
)
# FTS5 ranks are negative BM25 scores; a match on terms that every row contains scores ~0.
_MIN_BM25 = 1e-4


def fts_query(text: str) -> str | None:
    """A safe FTS5 query: every content word quoted, OR-ed (BM25 ranks rows matching more)."""
    words = [w for w in _WORD.findall(text.lower()) if (len(w) > 1 or w.isdigit()) and w not in STOPWORDS]
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def recall(
    conn: Any,
    *,
    query: str,
    vector: np.ndarray | None,
    limit: int = 10,
    types: list[str] | None = None,
    tags: list[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    metadata: dict[str, Any] | None = None,
    as_of: float | None = None,
    include_superseded: bool = False,
    recency_half_life_days: float | None = None,
    candidates: int | None = None,
    cache: VectorCache | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[dict[str, Any]]:
    """Hybrid recall: BM25 and vector ranks fused by RRF, filters applied to both.

    Each hit is ``{"memory", "score" (fused), "ranks", "similarity", "text_match", "text_score"}``;
    candidates whose ``similarity`` is below ``min_score`` and whose text did not match are
    dropped before the ``limit`` best are taken (``min_score <= 0``: none is dropped).
    """
    if not has_memories(conn):
        return []
    where, params = _filters(
        types=types,
        tags=tags,
        since=since,
        until=until,
        metadata=metadata,
        as_of=as_of,
        include_superseded=include_superseded,
    )
    filtered = bool(where != ["m.valid_to IS NULL"])
    k = candidates or max(50, limit * 5)
    ranks: dict[int, dict[str, int]] = {}
    bm25: dict[int, float] = {}
    cond = (" AND " + " AND ".join(where)) if where else ""
    fq = fts_query(query)
    if fq:
        rows = conn.execute(
            "SELECT m.rowid, f.rank FROM __memoturn_memories_fts f JOIN __memoturn_memories m ON m.rowid = f.rowid"
            f" WHERE __memoturn_memories_fts MATCH ?{cond} ORDER BY f.rank LIMIT ?",
            (fq, *params, k),
        ).fetchall()
        for rank, (rowid, fts_rank) in enumerate(r for r in rows if -r[1] > _MIN_BM25):
            ranks.setdefault(rowid, {})["bm25"] = rank
            bm25[rowid] = -fts_rank
    if vector is not None:
        fetch = k * (20 if filtered else 2)
        ordered = (cache or _DEFAULT_CACHE).search(conn, vector, fetch)
        if ordered:
            allowed = {
                r[0]
                for r in conn.execute(
                    f"SELECT m.rowid FROM __memoturn_memories m WHERE m.rowid IN ({','.join('?' * len(ordered))}){cond}",
                    (*ordered, *params),
                ).fetchall()
            }
            for rank, rowid in enumerate([r for r in ordered if r in allowed][:k]):
                ranks.setdefault(rowid, {})["vector"] = rank
    if not ranks:
        return []
    similarity = _similarities(conn, list(ranks), vector) if vector is not None else {}
    scores = {rowid: sum(1.0 / (RRF_K + 1 + rank) for rank in r.values()) for rowid, r in ranks.items()}
    if min_score > 0:
        scores = {r: s for r, s in scores.items() if r in bm25 or similarity.get(r, -1.0) >= min_score}
        if not scores:
            return []
    if recency_half_life_days:
        now = time.time()
        ids = list(scores)
        for rowid, when in conn.execute(
            f"SELECT rowid, COALESCE(event_time, recorded_at) FROM __memoturn_memories"
            f" WHERE rowid IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchall():
            scores[rowid] *= math.pow(0.5, max(0.0, now - when) / 86400 / recency_half_life_days)
    top = sorted(scores, key=lambda r: scores[r], reverse=True)[:limit]
    if not top:
        return []
    rows = {
        row[-1]: row
        for row in conn.execute(
            f"SELECT {_COLUMNS}, rowid FROM __memoturn_memories WHERE rowid IN ({','.join('?' * len(top))})", top
        ).fetchall()
    }
    return [
        {
            "memory": _row(rows[r]),
            "score": scores[r],
            "ranks": ranks[r],
            "similarity": similarity.get(r),
            "text_match": r in bm25,
            "text_score": bm25.get(r),
        }
        for r in top
        if r in rows
    ]


def _similarities(conn: Any, rowids: list[int], vector: np.ndarray) -> dict[int, float]:
    """Cosine similarity of ``vector`` and each memory's embedding (a caller's own vectors need
    not be unit length, so both sides are normalised here)."""
    q = np.asarray(vector, dtype=np.float32)
    qn = float(np.linalg.norm(q))
    out: dict[int, float] = {}
    if qn == 0:
        return out
    rows = conn.execute(
        f"SELECT rowid, embedding FROM __memoturn_memories WHERE rowid IN ({','.join('?' * len(rowids))})"
        " AND embedding IS NOT NULL",
        rowids,
    ).fetchall()
    if not rows:
        return out
    mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    if mat.shape[1] != q.shape[0]:
        return out
    norms = np.clip(np.linalg.norm(mat, axis=1), 1e-12, None)
    sims = (mat @ q) / (norms * qn)
    for (rowid, _), sim in zip(rows, sims, strict=True):
        out[int(rowid)] = round(float(sim), 6)
    return out


def stats(conn: Any) -> dict[str, Any]:
    if not has_memories(conn):
        return {"memories": 0, "current": 0, "by_type": {}, "embedding_dim": None}
    total, current = conn.execute("SELECT count(*), sum(valid_to IS NULL) FROM __memoturn_memories").fetchone()
    by_type = dict(
        conn.execute("SELECT type, count(*) FROM __memoturn_memories WHERE valid_to IS NULL GROUP BY type").fetchall()
    )
    return {"memories": total, "current": current or 0, "by_type": by_type, "embedding_dim": profile_dim(conn)}


# For the relationship walks of :mod:`.relationships`, which read memories in their own SQL:
COLUMNS_M = ", ".join(f"m.{c}" for c in _COLUMNS.split(", "))  # the columns :func:`row_dict` reads, alias ``m``
row_dict = _row
visibility = _filters  # the WHERE terms (alias ``m``) recall filters with
similarities = _similarities
