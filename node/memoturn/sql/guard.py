"""What user SQL may do: decided from SQLite's own tokens and from the compiled program.

User SQL runs inside the profile database, next to the reserved ``__memoturn_*`` tables that
hold KV, typed memories and metadata, and next to the engine's internals (schema tables, page
access, index shadow tables). Two independent checks stand between a statement and them:

1. **Tokens** (:func:`check_statement`, before anything runs). The text is tokenized as
   SQLite does (every quoting form: ``"x"``, ```x```, ``[x]``, ``'x'``; comments; blobs;
   parameters), so no quoting or comment variant hides a name. A statement is refused when

   * any identifier names a reserved object: ``__memoturn*``, ``sqlite_*`` (schema tables,
     ``sqlite_dbpage``, ``sqlite_stat*``, ``sqlite_sequence``), ``dbstat``, the ``pragma_*``
     table-valued functions (they take a table name as a *value*, even a bound parameter),
     ``libsql_*`` other than ``libsql_vector_idx``, index shadow tables (``*_shadow``,
     ``*_shadow_idx``), or a dangerous function (``load_extension``, ``readfile``, …).
     SQLite resolves tables, views, modules and functions only from identifier tokens, so
     no run-time value can name one, except the table-valued functions refused here;
   * any string literal mentions ``__memoturn`` (arguments of ``vector_top_k``,
     ``fts5vocab``, pragmas);
   * it attaches or detaches, controls the transaction (the server owns ``BEGIN``/``COMMIT``
     /``SAVEPOINT``), or vacuums ``INTO`` a file;
   * it is a ``PRAGMA`` (also after ``EXPLAIN``) outside a read-only allowlist: flag pragmas
     such as ``writable_schema`` act while the statement is *compiled*, so they are refused
     on their parsed name before SQLite ever sees them;
   * the entry holds more than one statement.

2. **Program** (:func:`check_program`, in the SQL worker, before each statement runs).
   ``EXPLAIN`` compiles the statement; every b-tree it would open (``OpenRead``,
   ``OpenWrite``, ``ReopenIdx``, and ``Clear``/``Destroy`` which empty or drop one) is looked up by root page in the schema: reserved tables
   and indexes may not be opened at all, shadow tables of virtual tables (FTS, vector
   indexes) not for writing; opcodes that switch journaling or checkpoint are refused.

User SQL can therefore never change journaling, checkpointing or page storage (DESIGN 11, 12).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, Forbidden

#: Pragmas user SQL may run, all read-only (``user_version`` may also be set: a header field).
SAFE_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "page_count",
        "page_size",
        "freelist_count",
        "user_version",
        "application_id",
        "data_version",
        "collation_list",
        "compile_options",
    }
)
_SETTABLE_PRAGMAS = frozenset({"user_version"})
_TXN_WORDS = frozenset({"attach", "detach", "begin", "commit", "end", "rollback", "savepoint", "release"})
_DENIED_FUNCTIONS = frozenset(
    {
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "zipfile",
        "sqlar_compress",
        "sqlar_uncompress",
        "fts5_source_id",
    }
)
_ALLOWED_SQLITE_FUNCTIONS = frozenset(
    {"sqlite_version", "sqlite_source_id", "sqlite_compileoption_used", "sqlite_compileoption_get", "sqlite_offset"}
)
_ALLOWED_LIBSQL = frozenset({"libsql_vector_idx"})


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # 'id' (word or quoted identifier), 'str', 'blob', 'num', 'var', 'op', 'semi'
    value: str  # identifiers unquoted and lower-cased; strings unquoted
    quoted: bool = False
    start: int = field(default=-1, compare=False)  # where a 'var' token is in the text (rewritten by bind)


_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_NUMBER = re.compile(r"(?:0[xX][0-9A-Fa-f_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)")
_VAR = re.compile(r"\?\d*|[:@$][A-Za-z0-9_$\x80-\U0010ffff]+(?:::[A-Za-z0-9_]+)*(?:\([^)]*\))?")
_OPS = ("||", "<<", ">>", "<=", ">=", "==", "!=", "<>", "->>", "->")


def tokenize(sql: str) -> list[Token]:
    """SQLite's tokens of ``sql`` (comments and blanks dropped). Raises on unterminated quotes."""
    out: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i = _SPACE.match(sql, i).end()  # type: ignore[union-attr]  # sql[i] is whitespace: it matches
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c in "'\"`":
            j, parts = i + 1, []
            while True:
                k = sql.find(c, j)
                if k < 0:
                    raise BadRequest("unterminated quoted string or identifier", type="invalid-sql")
                parts.append(sql[j:k])
                if k + 1 < n and sql[k + 1] == c:
                    parts.append(c)
                    j = k + 2
                    continue
                i = k + 1
                break
            text = "".join(parts)
            out.append(Token("str", text) if c == "'" else Token("id", text.lower(), quoted=True))
        elif c == "[":
            k = sql.find("]", i + 1)
            if k < 0:
                raise BadRequest("unterminated [identifier]", type="invalid-sql")
            out.append(Token("id", sql[i + 1 : k].lower(), quoted=True))
            i = k + 1
        elif c in "xX" and i + 1 < n and sql[i + 1] == "'":
            k = sql.find("'", i + 2)
            if k < 0:
                raise BadRequest("unterminated blob literal", type="invalid-sql")
            out.append(Token("blob", sql[i + 2 : k]))
            i = k + 1
        elif c == ";":
            out.append(Token("semi", ";"))
            i += 1
        elif (m := _NUMBER.match(sql, i)) and (c.isdigit() or c == "."):
            out.append(Token("num", m.group()))
            i = m.end()
        elif m := _WORD.match(sql, i):
            out.append(Token("id", m.group().lower()))
            i = m.end()
        elif c in "?:@$" and (m := _VAR.match(sql, i)):
            out.append(Token("var", m.group(), start=i))
            i = m.end()
        else:
            op = next((o for o in _OPS if sql.startswith(o, i)), c)
            out.append(Token("op", op))
            i += len(op)
    return out


def reserved_name(name: str) -> bool:
    """Whether an identifier (lower-case, unquoted) names something user SQL may not touch."""
    if name.startswith("__memoturn") or name.startswith("pragma_") or name == "dbstat":
        return True
    if name.startswith("sqlite_"):
        return name not in _ALLOWED_SQLITE_FUNCTIONS
    if name.startswith("libsql_"):
        return name not in _ALLOWED_LIBSQL
    return name.endswith("_shadow") or name.endswith("_shadow_idx") or name in _DENIED_FUNCTIONS


def _statements(sql: str, tokens: list[Token]) -> int:
    """How many statements the tokens hold (a trigger body's inner ';' do not end one)."""
    count = 0
    current: list[Token] = []
    for tok in tokens:
        if tok.kind == "semi":
            if current and sqlite3.complete_statement(" ".join(_render(t) for t in current) + ";"):
                count += 1
                current = []
            elif current:
                current.append(tok)
            continue
        current.append(tok)
    return count + (1 if current else 0)


def _render(tok: Token) -> str:
    if tok.kind == "str":
        return "'" + tok.value.replace("'", "''") + "'"
    if tok.kind == "id":
        return '"' + tok.value.replace('"', '""') + '"' if tok.quoted else tok.value
    if tok.kind == "blob":
        return "x'" + tok.value + "'"
    return tok.value


def check_statement(sql: str) -> str:
    """Return the statement's kind ('vacuum', 'pragma' or 'sql') or raise a clear 4xx error."""
    if not isinstance(sql, str) or not sql.strip():
        raise BadRequest("empty SQL statement", type="invalid-sql")
    if "\x00" in sql:
        raise BadRequest("SQL text must not contain NUL characters", type="invalid-sql")
    tokens = tokenize(sql)
    if not tokens or all(t.kind == "semi" for t in tokens):
        raise BadRequest("empty SQL statement", type="invalid-sql")
    if _statements(sql, tokens) > 1:
        raise BadRequest("one statement per entry: send several statements as a batch", type="multiple-statements")
    for tok in tokens:
        if tok.kind == "id" and tok.value in _DENIED_FUNCTIONS:
            raise Forbidden(f"{tok.value.upper()} is not allowed in user SQL", type="forbidden-statement")
        if tok.kind == "id" and reserved_name(tok.value):
            raise Forbidden(f"{tok.value!r} is reserved: user SQL cannot use it", type="reserved-table")
        if tok.kind == "str" and "__memoturn" in tok.value.lower():
            raise Forbidden("reserved __memoturn_* objects cannot be named from SQL", type="reserved-table")
    words = [t for t in tokens if t.kind != "semi"]
    head = 0
    if words[0].kind == "id" and words[0].value == "explain" and not words[0].quoted:
        head = 1
        if len(words) > 2 and words[1].value == "query" and words[2].value == "plan":
            head = 3
    if head >= len(words):
        raise BadRequest("EXPLAIN of what?", type="invalid-sql")
    first = words[head]
    verb = first.value if first.kind == "id" and not first.quoted else ""
    if verb in _TXN_WORDS:
        raise Forbidden(
            f"{verb.upper()} is not allowed in user SQL (the server runs each batch as one transaction)",
            type="forbidden-statement",
        )
    if verb == "pragma":
        _check_pragma(words[head + 1 :])
        return "pragma"
    if verb == "vacuum":
        if any(t.kind == "id" and t.value == "into" and not t.quoted for t in words[head + 1 :]):
            raise Forbidden("VACUUM INTO is not allowed in user SQL", type="forbidden-statement")
        return "vacuum" if head == 0 else "sql"
    return "sql"


def _check_pragma(rest: list[Token]) -> None:
    """``PRAGMA [schema.]name [= value | (value)]`` with ``name`` in :data:`SAFE_PRAGMAS`."""
    if len(rest) >= 2 and rest[1].kind == "op" and rest[1].value == ".":
        if rest[0].value not in ("main", "temp"):
            raise Forbidden(f"PRAGMA on schema {rest[0].value!r} is not allowed", type="forbidden-statement")
        rest = rest[2:]
    if not rest or rest[0].kind != "id":
        raise BadRequest("PRAGMA needs a name", type="invalid-sql")
    name = rest[0].value
    if name not in SAFE_PRAGMAS:
        raise Forbidden(f"PRAGMA {name} is not allowed in user SQL", type="forbidden-statement")
    tail = rest[1:]
    if not tail:
        return
    if tail[0].value == "=" and name not in _SETTABLE_PRAGMAS:
        raise Forbidden(f"PRAGMA {name} cannot be set from user SQL", type="forbidden-statement")
    if tail[0].value not in ("=", "(") or len(tail) > 4:
        raise BadRequest(f"malformed PRAGMA {name}", type="invalid-sql")


# -- compiled program -------------------------------------------------------------------------

_OPENERS = frozenset({"OpenRead", "OpenWrite", "ReopenIdx"})
_DENIED_OPCODES = frozenset({"JournalMode", "Checkpoint"})


@dataclass(frozen=True)
class Protected:
    """Root pages of the main schema that user SQL may not open (or not write)."""

    no_access: dict[int, str]
    no_write: dict[int, str]


def protected_pages(conn: Any) -> Protected:
    """Read the schema (trusted query) and classify every b-tree by what user SQL may do to it."""
    rows = conn.execute("SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema").fetchall()
    vtabs = [
        name.lower()
        for typ, name, _t, _r, sql in rows
        if typ == "table" and sql and sql.lstrip()[:20].upper().startswith("CREATE VIRTUAL")
    ]
    no_access: dict[int, str] = {}
    no_write: dict[int, str] = {}
    for _typ, name, tbl, root, _sql in rows:
        if not root:
            continue
        low, owner = name.lower(), (tbl or "").lower()
        if low.startswith("sqlite_autoindex_"):
            low = owner  # a UNIQUE/PRIMARY KEY index belongs to its table: reserved only if the table is
        if (
            reserved_name(low)
            or owner.startswith("__memoturn")
            or (low.startswith("sqlite_") and low != "sqlite_sequence")
        ):
            no_access[root] = name
        elif any(low.startswith(v + "_") or owner.startswith(v + "_") for v in vtabs) or owner.endswith("_shadow"):
            no_write[root] = name
    return Protected(no_access, no_write)


def check_program(conn: Any, sql: str, params: Any, protected: Protected) -> None:
    """Compile ``sql`` with EXPLAIN and refuse it if its program touches protected storage."""
    try:
        program = conn.execute("EXPLAIN " + sql, params).fetchall()
    except ValueError:
        return  # does not compile: running it raises the same error, reported as sql-error
    except BaseException as exc:  # the binding panics on some binary operands: refuse what cannot be checked
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise Forbidden(
            "the statement's program cannot be checked, so it is not run", type="forbidden-statement"
        ) from None
    for row in program:
        opcode, p1, p2, p3 = row[1], row[2], row[3], row[4]
        if opcode in ("Clear", "Destroy"):  # DELETE without WHERE, DROP: b-tree by root page in p1
            opcode, p2, p3 = "OpenWrite", p1, (p2 if opcode == "Clear" else p3)
        if opcode in _OPENERS and p3 == 0:
            if p2 in protected.no_access:
                raise Forbidden(
                    f"the statement reads or writes {protected.no_access[p2]!r}, which is reserved",
                    type="reserved-table",
                )
            if opcode == "OpenWrite" and p2 in protected.no_write:
                raise Forbidden(
                    f"{protected.no_write[p2]!r} is maintained by its index: write to its table instead",
                    type="reserved-table",
                )
        elif opcode == "JournalMode" and p3 == -1:
            continue  # PAGER_JOURNALMODE_QUERY: SQLite's way of marking a statement not read-only
        elif opcode in _DENIED_OPCODES:
            raise Forbidden(f"user SQL cannot run {opcode}", type="forbidden-statement")
        elif opcode in ("Function", "PureFunc") and isinstance(row[5], str):
            fname = row[5].split("(", 1)[0].lower()
            if reserved_name(fname):
                raise Forbidden(f"function {fname} is not allowed in user SQL", type="forbidden-statement")
