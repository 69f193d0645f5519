"""Key-value surface over the reserved ``__memoturn_kv`` table, with per-key TTL.

Values are JSON documents stored as text. An expired key reads as absent at once; expired
rows are deleted opportunistically by later writes (a bounded batch each time), so TTL
costs no background scan.
"""

from __future__ import annotations

import json
from typing import Any

from .. import clock
from ..errors import BadRequest, PayloadTooLarge

MAX_KEY_BYTES = 1024
_PURGE_BATCH = 64


def check_key(key: str) -> str:
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"KV keys must be 1-{MAX_KEY_BYTES} bytes", type="invalid-key")
    return key


def encode_value(value: Any, max_bytes: int) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > max_bytes:
        raise PayloadTooLarge(f"value is {len(text.encode())} bytes; the limit is {max_bytes}", type="value-too-large")
    return text


def put(conn: Any, key: str, text: str, ttl_seconds: float | None) -> None:
    now = clock.now()
    expires = now + ttl_seconds if ttl_seconds is not None else None
    conn.execute(
        "INSERT INTO __memoturn_kv(key, value, expires_at, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, "
        "updated_at = excluded.updated_at",
        (key, text, expires, now),
    )
    purge_expired(conn, now)


def get(conn: Any, key: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT value, expires_at, updated_at FROM __memoturn_kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
        (key, clock.now()),
    ).fetchone()
    if row is None:
        return None
    return {"key": key, "value": json.loads(row[0]), "expires_at": row[1], "updated_at": row[2]}


def delete(conn: Any, key: str) -> bool:
    existed = conn.execute(
        "SELECT 1 FROM __memoturn_kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)", (key, clock.now())
    ).fetchone()
    conn.execute("DELETE FROM __memoturn_kv WHERE key = ?", (key,))
    return existed is not None


def list_keys(conn: Any, prefix: str, limit: int, after: str | None, with_values: bool) -> list[dict[str, Any]]:
    # Prefix match as a range scan on the primary key: [prefix, prefix + U+10FFFF).
    lo = max(prefix, after) if after is not None else prefix
    op = ">" if after is not None and after >= prefix else ">="
    rows = conn.execute(
        f"SELECT key, value, expires_at, updated_at FROM __memoturn_kv WHERE key {op} ? AND key < ? "
        "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
        (lo, prefix + "\U0010ffff", clock.now(), limit),
    ).fetchall()
    out = []
    for key, value, expires_at, updated_at in rows:
        item: dict[str, Any] = {"key": key, "expires_at": expires_at, "updated_at": updated_at}
        if with_values:
            item["value"] = json.loads(value)
        out.append(item)
    return out


def purge_expired(conn: Any, now: float) -> None:
    conn.execute(
        "DELETE FROM __memoturn_kv WHERE key IN (SELECT key FROM __memoturn_kv "
        "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)",
        (now, _PURGE_BATCH),
    )
