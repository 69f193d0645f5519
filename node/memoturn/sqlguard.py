"""Screening of user SQL: reserved tables and engine internals are out of reach.

User SQL runs inside the profile database, next to the reserved ``__memoturn_*`` tables
that hold KV, typed memories and metadata. A statement is refused, with a clear error,
when it

* mentions ``__memoturn`` anywhere (identifier, quoted identifier, string literal, view or
  trigger body: a name cannot be built at run time in SQL, so a textual check is complete);
* mentions the schema tables (``sqlite_schema``, ``sqlite_master`` and their temp forms);
* attaches or detaches databases, loads extensions, vacuums into a file, or controls the
  transaction (the server owns ``BEGIN``/``COMMIT``/``SAVEPOINT``);
* is a ``PRAGMA`` outside a read-only allowlist (``writable_schema`` and friends are out);
* contains more than one statement (send a batch instead; ``;`` inside a trigger body or a
  literal does not count, as :func:`sqlite3.complete_statement` decides).

Comments are stripped before the checks so they cannot hide a keyword.
"""

from __future__ import annotations

import re
import sqlite3

from .errors import BadRequest, Forbidden

_SAFE_PRAGMAS = {
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check", "page_count", "page_size",
    "freelist_count", "user_version", "application_id", "data_version", "collation_list",
    "function_list", "compile_options",
}
_SCHEMA_TABLES = re.compile(r"\bsqlite_(?:temp_)?(?:schema|master)\b")
_FORBIDDEN_WORDS = re.compile(
    r"^\s*(attach|detach|begin|commit|end|rollback|savepoint|release)\b|\bload_extension\b|\bvacuum\s+.*\binto\b|"
    r"\bwritefile\b|\breadfile\b|\bfts3_tokenizer\b",
    re.S,
)
_PRAGMA = re.compile(r"^\s*pragma\s+(?:\w+\s*\.\s*)?(\w+)\s*(=|\()?", re.S)


def _strip(sql: str) -> tuple[str, list[int]]:
    """Remove comments; return the text (literals kept) and where its ';' outside literals are."""
    out: list[str] = []
    semis: list[int] = []
    i, n, pos = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            out.append(" ")
            pos += 1
            continue
        if c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
            pos += 1
            continue
        if c in "'\"`[":
            close = "]" if c == "[" else c
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and j + 1 < n and sql[j + 1] == close:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            pos += len(sql[i : j + 1])
            i = j + 1
            continue
        if c == ";":
            semis.append(pos)
        out.append(c)
        pos += 1
        i += 1
    return "".join(out), semis


def _count_statements(text: str, semis: list[int]) -> int:
    """How many statements ``text`` holds; a trigger body's inner ';' do not end it."""
    count, start = 0, 0
    for pos in semis:
        if sqlite3.complete_statement(text[start : pos + 1]):
            if text[start:pos].strip():
                count += 1
            start = pos + 1
    return count + (1 if text[start:].strip() else 0)


def check_statement(sql: str) -> str:
    """Return the statement kind ('vacuum', 'pragma' or 'sql') or raise a clear error."""
    if not isinstance(sql, str) or not sql.strip():
        raise BadRequest("empty SQL statement", type="invalid-sql")
    text, semis = _strip(sql)
    if _count_statements(text, semis) > 1:
        raise BadRequest("one statement per entry: send several statements as a batch", type="multiple-statements")
    low = text.lower()
    if "__memoturn" in low:
        raise Forbidden("reserved __memoturn_* tables cannot be used from SQL", type="reserved-table")
    if _SCHEMA_TABLES.search(low):
        raise Forbidden("the schema tables cannot be used from SQL; use PRAGMA table_info", type="reserved-table")
    m = _FORBIDDEN_WORDS.search(low)
    if m:
        word = (m.group(1) or m.group(0)).split()[0]
        raise Forbidden(f"{word.upper()} is not allowed in user SQL", type="forbidden-statement")
    pm = _PRAGMA.match(low)
    if pm:
        if pm.group(1) not in _SAFE_PRAGMAS or (pm.group(2) == "=" and pm.group(1) != "user_version"):
            raise Forbidden(f"PRAGMA {pm.group(1)} is not allowed in user SQL", type="forbidden-statement")
        return "pragma"
    if re.match(r"^\s*vacuum\b", low):
        return "vacuum"
    return "sql"
