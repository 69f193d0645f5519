"""A libSQL connection that closes its SQLite handle exactly once.

The ``libsql`` Python binding (0.1.11, over the libsql crate 0.9) closes a local connection's
``sqlite3`` handle twice whenever the connection object goes away, by :meth:`close` or by
garbage collection (tursodatabase/libsql#2251, unfixed upstream): the crate's outer connection
drops first and calls ``sqlite3_close_v2``, then the inner one it wraps calls it again on the
freed handle. Usually that second call reads freed memory and returns ``SQLITE_MISUSE``; when
another thread has reused the block meanwhile and left bytes there that look like an open
handle, SQLite walks garbage and the process dies of a segmentation fault (CI saw one).

Neither of those two closes runs while a prepared statement still holds the connection (each
checks that its handle is the only one left); the statement's own drop then closes the handle,
once. So :meth:`Connection.close` keeps one statement open across the binding's close and drops
it after. Running the binding's own close under ``MALLOC_PERTURB_=118`` (freed memory reads as
an open handle) crashes within a few connections; this one does not (``tests/test_connection_close.py``).

The binding also binds a Python ``int`` as a 32-bit integer or else as a double, so
``9007199254740993`` would be stored as the REAL ``9007199254740992.0``. :meth:`Connection.execute`
binds every integer of the 64-bit range exactly, as SQLite's ``sqlite3_bind_int64`` would: such a
parameter travels as its decimal text and its placeholder becomes ``CAST(? AS INTEGER)`` (an
expression with no affinity, like a bound value). Integers beyond 64 bits stay doubles, as SQLite
reads an integer literal too large for 64 bits (``tests/test_wide_integers.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import libsql

from .guard import tokenize

_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)


class Connection:
    """A ``libsql`` connection that binds 64-bit integers exactly and whose :meth:`close` is
    safe, idempotent, and also run when the object is collected."""

    __slots__ = ("_conn", "_execute", "_open")

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._open = True
        self._execute = conn.execute

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The binding's ``execute``, with integers beyond 32 bits bound exactly."""
        for v in params:
            if v.__class__ is int and not _I32[0] <= v <= _I32[1]:
                return self._execute(*_widened(sql, params))
        return self._execute(sql, params)

    @property
    def in_transaction(self) -> bool:
        return bool(self._conn.in_transaction)

    def close(self) -> None:
        """Close the handle exactly once; closing a closed connection does nothing."""
        if not self._open:
            return
        self._open = False
        try:
            held = self._execute("SELECT 1")  # a statement that outlives the binding's close
        except Exception:  # noqa: BLE001 - nothing to hold: close as the binding does
            held = None
        self._conn.close()
        del held  # its drop closes the sqlite3 handle, once

    def __del__(self) -> None:
        self.close()


def connect(path: str) -> Connection:
    """Open ``path`` (created if absent) with autocommit, as every caller here uses it."""
    return Connection(libsql.connect(path, isolation_level=None))


def _widened(sql: str, params: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """``(sql, params)`` with each 64-bit integer beyond 32 bits sent as text and cast back."""
    wide = frozenset(
        i + 1
        for i, v in enumerate(params)
        if v.__class__ is int and _I64[0] <= v <= _I64[1] and not _I32[0] <= v <= _I32[1]
    )
    values = tuple(str(v) if i + 1 in wide else v for i, v in enumerate(params))
    if not wide:
        return sql, values
    # The node's own statements repeat; a client's may be megabytes and never come again.
    cast = _cast_placeholders_cached if len(sql) <= _CACHED_SQL_CHARS else _cast_placeholders
    return cast(sql, wide), values


_CACHED_SQL_CHARS = 4096


def _cast_placeholders(sql: str, numbers: frozenset[int]) -> str:
    """``sql`` with every placeholder of a parameter numbered in ``numbers`` (1-based, numbered
    as SQLite does: ``?`` is one past the largest so far, ``?N`` is N, a name keeps the number it
    first got) wrapped in ``CAST(... AS INTEGER)``. Text that does not tokenize is left alone
    (SQLite rejects it with its own message)."""
    try:
        tokens = tokenize(sql)
    except Exception:  # noqa: BLE001 - unterminated quote: SQLite says so
        return sql
    parts: list[str] = []
    at = largest = 0
    names: dict[str, int] = {}
    for tok in tokens:
        if tok.kind != "var":
            continue
        text = tok.value
        if text == "?":
            largest += 1
            number = largest
        elif text[0] == "?":
            number = int(text[1:])
            largest = max(largest, number)
        else:
            if text not in names:
                largest += 1
                names[text] = largest
            number = names[text]
        if number in numbers:
            parts += [sql[at : tok.start], f"CAST({text} AS INTEGER)"]
            at = tok.start + len(text)
    parts.append(sql[at:])
    return "".join(parts)


_cast_placeholders_cached = functools.lru_cache(maxsize=256)(_cast_placeholders)
