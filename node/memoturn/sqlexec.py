"""Run a screened batch of user SQL statements on a connection and shape the results.

Blobs travel as ``{"base64": "..."}`` in both directions. Engine errors become
:class:`BadRequest` with SQLite's own message and the index of the failing statement.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .errors import BadRequest
from .sqlguard import check_statement


def _param(value: Any) -> Any:
    if isinstance(value, dict):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (KeyError, binascii.Error, TypeError):
            raise BadRequest("blob parameters must be {\"base64\": \"...\"}", type="invalid-parameter") from None
    if hasattr(value, "base64"):
        return _param({"base64": value.base64})
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    return value


def screen(statements: list[tuple[str, Any]]) -> bool:
    """Check every statement; return True if the batch must run outside a transaction."""
    kinds = [check_statement(sql) for sql, _ in statements]
    if "vacuum" in kinds:
        if len(kinds) > 1:
            raise BadRequest("VACUUM must be the only statement of its batch", type="invalid-batch")
        return True
    return False


def run_batch(conn: Any, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for index, (sql, params) in enumerate(statements):
        if isinstance(params, dict):
            bound: Any = {k.lstrip(":@$"): _param(v) for k, v in params.items()}
        else:
            bound = tuple(_param(v) for v in params or ())
        try:
            cur = conn.execute(sql, bound)
            rows = cur.fetchall() or []
        except ValueError as exc:
            raise BadRequest(f"statement {index}: {exc}", type="sql-error") from None
        columns = [d[0] for d in (cur.description or ())]
        results.append(
            {
                "columns": columns,
                "rows": [[_cell(v) for v in row] for row in rows],
                "rows_affected": max(cur.rowcount, 0) if not columns else 0,
                "last_insert_rowid": cur.lastrowid if not columns else None,
            }
        )
    return results
