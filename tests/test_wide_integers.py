"""Integers beyond 32 bits are bound exactly, as SQLite stores the same integer written literally.

The libsql binding alone binds them as doubles (``9007199254740993`` became the REAL
``9007199254740992.0``); SQLite itself, given the literal, is the reference here.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node
from memoturn.sql.connection import _cast_placeholders, connect

EDGES = [
    0,
    -1,
    2**31 - 1,
    -(2**31),
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    -(2**53) - 1,
    2**62 + 3,
    2**63 - 1,
    -(2**63) + 1,
    2**64 + 1,  # beyond 64 bits: a double, as SQLite reads such a literal
    -(2**70),
]


@pytest.fixture
def conn(tmp_path):
    c = connect(str(tmp_path / "w.db"))
    yield c
    c.close()


@pytest.mark.parametrize("value", EDGES)
def test_a_bound_integer_is_what_sqlite_makes_of_the_literal(conn, value):
    assert (
        conn.execute("SELECT ?, typeof(?)", (value, value)).fetchone()
        == conn.execute(f"SELECT {value}, typeof({value})").fetchone()
    )


def test_the_smallest_64_bit_integer_is_bound_exactly(conn):
    # (its literal is the double -9223372036854775808.0: SQLite negates 9223372036854775808)
    assert conn.execute("SELECT ?, typeof(?)", (-(2**63), -(2**63))).fetchone() == (-(2**63), "integer")


@pytest.mark.parametrize("declared", ["TEXT", "", "REAL", "INTEGER", "NUMERIC", "BLOB"])
def test_column_affinity_treats_a_bound_integer_as_the_literal(conn, declared):
    conn.execute(f"CREATE TABLE t(v {declared})")
    for value in EDGES:
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        conn.execute(f"INSERT INTO t VALUES ({value})")
    rows = conn.execute("SELECT v, typeof(v) FROM t ORDER BY rowid").fetchall()
    assert [tuple(r) for r in rows[0::2]] == [tuple(r) for r in rows[1::2]]
    for value in EDGES:
        bound = conn.execute("SELECT count(*) FROM t WHERE v = ?", (value,)).fetchone()[0]
        assert bound == conn.execute(f"SELECT count(*) FROM t WHERE v = {value}").fetchone()[0], value


def test_placeholders_are_numbered_as_sqlite_numbers_them(conn):
    big, other = 2**40, 2**41
    row = conn.execute("SELECT ?, '?' || ? /* ? */, ?1, :a, ?, :a, ?5 -- ?", (big, "s", 7, other, big + 1)).fetchone()
    assert tuple(row) == (big, "?s", big, 7, other, 7, big + 1)


def test_only_the_wide_parameters_placeholders_are_cast():
    sql = "SELECT ?, ?, \"?\", '?', [?], ?3, :n, @n, :n"
    assert _cast_placeholders(sql, frozenset({2, 4})) == (
        "SELECT ?, CAST(? AS INTEGER), \"?\", '?', [?], ?3, CAST(:n AS INTEGER), @n, CAST(:n AS INTEGER)"
    )
    assert _cast_placeholders("SELECT 'unterminated ?", frozenset({1})) == "SELECT 'unterminated ?"


def test_the_sql_api_round_trips_64_bit_integers(tmp_path, file_store):
    node = Node(
        Settings(data_dir=str(tmp_path / "n"), node_id="w", admin_token="admin", tokens="acme:t"), store=file_store
    )
    admin, user = {"Authorization": "Bearer admin"}, {"Authorization": "Bearer t"}
    with TestClient(create_app(node), raise_server_exceptions=False) as client:
        assert client.post("/v1/databases", headers=admin, json={"name": "acme--w"}).status_code == 201

        def sql(statement, params):
            r = client.post(
                "/v1/databases/acme--w/sql", headers=user, json={"statements": [{"sql": statement, "params": params}]}
            )
            assert r.status_code == 200, r.text
            return r.json()["results"][0]["rows"]

        sql("CREATE TABLE ids(id INTEGER PRIMARY KEY, n)", [])
        values = [9007199254740993, 2**63 - 1, -(2**63), 3_000_000_000]
        for v in values:
            sql("INSERT INTO ids(n) VALUES (?)", [v])
        sql("INSERT INTO ids(id, n) VALUES (:id, :id)", {"id": 2**62 + 1})
        assert sql("SELECT n, typeof(n) FROM ids ORDER BY rowid", []) == [[v, "integer"] for v in values] + [
            [2**62 + 1, "integer"]
        ]
        assert sql("SELECT id FROM ids WHERE id = ?", [2**62 + 1]) == [[2**62 + 1]]


def test_a_long_statement_binds_the_same_without_the_cache(conn):
    padding = "/* " + "? " * 3000 + "*/"  # beyond the cached length: rewritten on every call
    assert conn.execute(f"SELECT ?, {padding} typeof(?)", (2**40, 2**40)).fetchone() == (2**40, "integer")
