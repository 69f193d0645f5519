"""Run a screened batch of user SQL on a connection of its own and shape the results.

This runs inside an SQL worker process (:mod:`memoturn.sql.worker`), never in the node's
interpreter. It owns the transaction: a batch with ``transaction=True`` runs in one
``BEGIN IMMEDIATE … COMMIT``; otherwise each statement runs in a transaction of its own
(``VACUUM``, which cannot, runs alone). Before each statement runs, its compiled program is
checked (:func:`memoturn.sql.guard.check_program`). Two budgets hold whatever the SQL does:

* the bytes a transaction writes: the WAL may grow by at most ``max_txn_bytes`` (dirty pages
  still in the page cache count at the cache's size), checked after every statement and
  before ``COMMIT``; past it the transaction rolls back with 413 ``transaction-too-large``;
* the bytes of the results: past ``max_result_bytes`` the batch fails with 413
  ``result-too-large`` (nothing huge is ever built in memory to be refused later).

Blobs travel as ``{"base64": "..."}`` in both directions. Engine errors become
:class:`BadRequest` with SQLite's own message and the index of the failing statement.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from ..errors import BadRequest, MemoturnError, PayloadTooLarge, Unavailable
from .guard import Protected, check_program, check_statement, protected_pages, tokenize


def engine_error(exc: Exception, where: str = "") -> MemoturnError:
    """An engine error as the client should see it: a full disk is the node's condition (503,
    retry elsewhere or later), anything else is the statement's (400)."""
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return Unavailable(f"{where}the node's local disk cannot take the write: {text}", type="disk-full")
    return BadRequest(f"{where}{text}", type="sql-error")


def _param(value: Any) -> Any:
    if isinstance(value, dict):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (KeyError, binascii.Error, TypeError, ValueError):
            raise BadRequest('blob parameters must be {"base64": "..."}', type="invalid-parameter") from None
    if hasattr(value, "base64"):
        return _param({"base64": value.base64})
    if isinstance(value, str) and "\x00" in value:
        raise BadRequest(
            'SQL parameters must not contain NUL characters (send bytes as {"base64": ...})', type="invalid-parameter"
        )
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    return value


def _size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) * 4 // 3 + 16
    if isinstance(value, str):
        return len(value) + 2
    return 8


def screen(statements: list[tuple[str, Any]]) -> bool:
    """Check every statement's tokens; return True if the batch must run outside a transaction."""
    kinds = [check_statement(sql) for sql, _ in statements]
    for _, params in statements:
        values = params.values() if isinstance(params, dict) else (params or ())
        for v in values:
            _param(v)
    if "vacuum" in kinds:
        if len(kinds) > 1:
            raise BadRequest("VACUUM must be the only statement of its batch", type="invalid-batch")
        return True
    return False


def bind(params: Any) -> tuple[Any, ...]:
    """Positional parameters as the values libSQL binds."""
    return tuple(_param(v) for v in params or ())


def bind_statement(sql: str, params: Any) -> tuple[str, tuple[Any, ...]]:
    """``(sql, values)`` with named parameters (``:name``, ``@name``, ``$name``) made positional.

    libSQL's Python binding takes positional values only, so each distinct name becomes a
    numbered ``?N`` (one name used twice binds one value, as in SQLite). A name without a value,
    or a positional ``?`` mixed with a mapping, is a 400, never a late binding error.
    """
    if not isinstance(params, dict):
        return sql, bind(params)
    values = {k.lstrip(":@$"): v for k, v in params.items()}
    numbers: dict[str, int] = {}
    parts: list[str] = []
    at = 0
    for tok in tokenize(sql):
        if tok.kind != "var":
            continue
        if tok.value.startswith("?"):
            raise BadRequest(
                f"statement uses positional parameter {tok.value!r} but params is an object; "
                "give params as a list, or name every parameter",
                type="invalid-params",
            )
        name = tok.value[1:]
        if name not in values:
            raise BadRequest(f"no value for parameter {tok.value!r} in params", type="invalid-params")
        number = numbers.setdefault(name, len(numbers) + 1)
        parts += [sql[at : tok.start], f"?{number}"]
        at = tok.start + len(tok.value)
    parts.append(sql[at:])
    ordered = sorted(numbers, key=numbers.__getitem__)
    return "".join(parts), bind([values[name] for name in ordered])


class Budget:
    """What one batch may still write (WAL growth) and return (result bytes)."""

    def __init__(self, wal_path: str, max_txn_bytes: int, max_result_bytes: int, cache_bytes: int) -> None:
        self.wal_path, self.max_txn_bytes, self.cache_bytes = wal_path, max_txn_bytes, cache_bytes
        self.result_left = max_result_bytes
        self.wal_start = self._wal_size()

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self.wal_path)
        except FileNotFoundError:
            return 0

    def begin(self) -> None:
        self.wal_start = self._wal_size()

    def check_writes(self) -> None:
        grown = self._wal_size() - self.wal_start
        if grown + self.cache_bytes > self.max_txn_bytes:
            raise PayloadTooLarge(
                f"the transaction writes more than {self.max_txn_bytes} bytes; split it into smaller ones",
                type="transaction-too-large",
            )

    def take(self, row: Any) -> None:
        self.result_left -= sum(_size(v) for v in row) + 8
        if self.result_left < 0:
            raise PayloadTooLarge(
                "the results exceed the response limit; add LIMIT or select fewer columns", type="result-too-large"
            )


def _run_one(conn: Any, index: int, sql: str, params: Any, protected: Protected, budget: Budget) -> dict[str, Any]:
    bound = bind(params)
    if check_statement(sql) != "pragma":  # allowlisted pragmas are read-only; EXPLAIN would run flag pragmas
        check_program(conn, sql, bound, protected)
    try:
        cur = conn.execute(sql, bound)
        rows = []
        while (row := cur.fetchone()) is not None:
            budget.take(row)
            rows.append([_cell(v) for v in row])
    except ValueError as exc:
        raise engine_error(exc, f"statement {index}: ") from None
    columns = [d[0] for d in (cur.description or ())]
    return {
        "columns": columns,
        "rows": rows,
        "rows_affected": max(cur.rowcount, 0) if not columns else 0,
        "last_insert_rowid": cur.lastrowid if not columns else None,
    }


def _schema_version(conn: Any) -> int:
    version: int = conn.execute("PRAGMA schema_version").fetchone()[0]
    return version


def run_batch(
    conn: Any,
    path: str,
    statements: list[tuple[str, Any]],
    *,
    transaction: bool,
    max_txn_bytes: int,
    max_result_bytes: int,
    cache_bytes: int,
) -> list[dict[str, Any]]:
    """Run the batch on ``conn`` (a fresh connection to ``path``); see the module docstring."""
    autocommit = screen(statements)
    budget = Budget(path + "-wal", max_txn_bytes, max_result_bytes, cache_bytes)
    protected = protected_pages(conn)
    schema = _schema_version(conn)
    results: list[dict[str, Any]] = []
    if autocommit:  # VACUUM alone: it rewrites the file through the WAL, no bigger than it is
        results.append(_run_one(conn, 0, statements[0][0], statements[0][1], protected, budget))
        return results
    groups = [list(enumerate(statements))] if transaction else [[(i, s)] for i, s in enumerate(statements)]
    for group in groups:
        budget.begin()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for index, (sql, params) in group:
                results.append(_run_one(conn, index, sql, params, protected, budget))
                budget.check_writes()
                if (version := _schema_version(conn)) != schema:
                    schema, protected = version, protected_pages(conn)
            budget.check_writes()
            try:
                conn.execute("COMMIT")
            except ValueError as exc:
                raise engine_error(exc, "commit: ") from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return results
