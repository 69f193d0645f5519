"""User SQL as an adversary writes it: nothing reaches reserved data, capture or the node.

Every statement of the corpus goes through the HTTP API with a namespace token. Each must
be refused with a 4xx or be harmless; afterwards the reserved tables are byte-identical,
the database is still in WAL mode under capture, and a durable write still reaches the
object store (a fresh node restores it).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.metrics import sample
from memoturn.server.api.app import create_app
from memoturn.server.node import Node
from memoturn.sql.guard import check_statement, tokenize

DB = "acme--x"
TOKEN = {"Authorization": "Bearer acme-token"}


def _quotings(name: str) -> list[str]:
    return [
        name,
        f'"{name}"',
        f"`{name}`",
        f"[{name}]",
        name.upper(),
        f"main.{name}",
        f'main."{name}"',
        f"/* c */ {name}",
        f'"{name.upper()}"',
    ]


RESERVED = [
    "__memoturn_kv",
    "__memoturn_memories",
    "sqlite_dbpage",
    "sqlite_schema",
    "sqlite_master",
    "sqlite_temp_master",
    "dbstat",
    "libsql_vector_meta_shadow",
    "vi_shadow",
    "sqlite_stat1",
]
TEMPLATES = [
    "SELECT * FROM {t}",
    "UPDATE {t} SET data = zeroblob(4096) WHERE pgno = 3",
    "DELETE FROM {t}",
    "INSERT INTO {t} VALUES (1)",
    "CREATE VIEW v_{i} AS SELECT * FROM {t}",
    "CREATE TRIGGER tr_{i} AFTER INSERT ON t BEGIN DELETE FROM {t}; END",
    "WITH c AS (SELECT * FROM {t}) SELECT * FROM c",
    "SELECT (SELECT count(*) FROM {t})",
    "ALTER TABLE {t} RENAME TO stolen_{i}",
    "DROP TABLE {t}",
]
PRAGMAS = [
    "PRAGMA journal_mode=DELETE",
    'PRAGMA "journal_mode"=DELETE',
    "PRAGMA 'journal_mode'='delete'",
    "PRAGMA [journal_mode]=OFF",
    "PRAGMA `journal_mode` = MEMORY",
    "PRAGMA main.journal_mode=TRUNCATE",
    'PRAGMA main."journal_mode"=PERSIST',
    "pragma/**/journal_mode=delete",
    "PRAGMA\njournal_mode\n=\nDELETE",
    'PRAGMA "wal_checkpoint"(TRUNCATE)',
    "PRAGMA wal_checkpoint",
    "PRAGMA wal_checkpoint(FULL)",
    "PRAGMA writable_schema=1",
    'PRAGMA "writable_schema"=1',
    "PRAGMA 'writable_schema'=ON",
    "PRAGMA [writable_schema]=1",
    'PRAGMA "foreign_keys"=OFF',
    "PRAGMA foreign_keys=0",
    "PRAGMA wal_autocheckpoint=1",
    "PRAGMA locking_mode=EXCLUSIVE",
    "PRAGMA synchronous=OFF",
    "PRAGMA cache_spill=0",
    "PRAGMA mmap_size=1000000",
    "PRAGMA temp_store_directory='/tmp'",
    "PRAGMA table_list",
    "PRAGMA table_info(__memoturn_kv)",
    "PRAGMA table_info('__memoturn_kv')",
    'PRAGMA table_info("__memoturn_kv")',
    "PRAGMA index_list([__memoturn_kv])",
    "PRAGMA schema_version=1",
    "PRAGMA page_size=512",
    "PRAGMA application_id=5",
    "PRAGMA ignore_check_constraints=1",
    "PRAGMA recursive_triggers=1",
    "PRAGMA defer_foreign_keys=1",
    "PRAGMA query_only=1",
    "PRAGMA shrink_memory",
    "PRAGMA optimize",
    "PRAGMA incremental_vacuum",
    "PRAGMA auto_vacuum=FULL",
    "PRAGMA secure_delete=1",
    "EXPLAIN PRAGMA writable_schema=1",
    "EXPLAIN QUERY PLAN PRAGMA journal_mode=DELETE",
    "PRAGMA trusted_schema=1",
    "PRAGMA cell_size_check=0",
    "PRAGMA temp.journal_mode=delete",
]
OTHERS = [
    "SELECT * FROM pragma_table_list",
    "SELECT * FROM pragma_table_info('__memoturn_kv')",
    "SELECT name FROM pragma_table_list()",
    "SELECT * FROM pragma_index_list(?)",
    "SELECT * FROM pragma_table_info(?)",
    "SELECT * FROM dbstat('main')",
    "SELECT sum(pgsize) FROM dbstat",
    "SELECT data FROM sqlite_dbpage('main')",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "ATTACH ':memory:' AS m",
    "DETACH main",
    "VACUUM INTO '/tmp/steal.db'",
    "VACUUM main INTO '/tmp/steal.db'",
    "SELECT load_extension('/tmp/x.so')",
    "SELECT \"load_extension\"('x')",
    "SELECT readfile('/etc/passwd')",
    "SELECT writefile('/tmp/x', 'y')",
    "SELECT fts3_tokenizer('simple')",
    "BEGIN",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT a",
    "RELEASE a",
    "ROLLBACK TO a",
    "SELECT 1; PRAGMA journal_mode=DELETE",
    "SELECT 1; DROP TABLE __memoturn_kv",
    "SELECT 1;;SELECT 2",
    "CREATE TABLE __memoturn_mine(a)",
    "CREATE TEMP TABLE __memoturn_kv(key, value)",
    'CREATE TEMP VIEW "__memoturn_kv" AS SELECT 1',
    "CREATE VIRTUAL TABLE voc USING fts5vocab('__memoturn_memories_fts', 'row')",
    "CREATE VIRTUAL TABLE voc2 USING fts5vocab(__memoturn_memories_fts, row)",
    "CREATE VIRTUAL TABLE d USING dbstat",
    "CREATE VIRTUAL TABLE p USING sqlite_dbpage",
    "SELECT * FROM vector_top_k('__memoturn_memories_vec_idx', vector32('[1,2,3]'), 3)",
    "INSERT INTO vi_shadow VALUES (1, x'00')",
    "DELETE FROM libsql_vector_meta_shadow",
    'DELETE FROM "vi_shadow"',
    "UPDATE f_data SET block = x'00'",
    "DELETE FROM f_idx",
    "INSERT INTO f_content VALUES (99, 'x')",
    "UPDATE [f_config] SET v = 9",
    "DELETE FROM `f_docsize`",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
    "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c)",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 200000) SELECT x, randomblob(1000) FROM c",
    "INSERT INTO t SELECT zeroblob(100*1024*1024)",
    "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 60) SELECT zeroblob(1000000) FROM c",
    "SELECT 'x\x00y'",
    "SELECT * FROM t WHERE a = '__memoturn_kv'",
    'CREATE TABLE "sqlite_x"(a)',
    "CREATE INDEX sqlite_autoindex_t_9 ON t(a)",
    "REINDEX __memoturn_kv",
    "ANALYZE __memoturn_kv",
    "ANALYZE sqlite_schema",
    "SELECT * FROM sqlite_sequence",
    "DELETE FROM sqlite_sequence",
    "SELECT * FROM sqlite_temp_schema",
    "INSERT INTO t VALUES ((SELECT group_concat(key) FROM __memoturn_kv))",
    'SELECT * FROM "__MEMOTURN_KV"',
    "SELECT * FROM __Memoturn_Kv",
    "SELECT * FROM [__memoturn_kv] AS k",
    "SELECT * FROM __memoturn_kv --",
    "SELECT * FROM /* */__memoturn_kv",
    "SELECT * FROM main . __memoturn_kv",
    "SELECT * FROM temp.sqlite_master",
    "SELECT * FROM sqlite_master WHERE 0",
]
HARMLESS = [  # must run (200): the guard must not refuse ordinary SQL
    "SELECT 1",
    "SELECT '__memo' || 'turn'",
    "SELECT * FROM t",
    "INSERT INTO t VALUES (1)",
    "CREATE TABLE IF NOT EXISTS u(a INTEGER PRIMARY KEY, b TEXT)",
    "PRAGMA table_info(t)",
    "PRAGMA user_version=3",
    "PRAGMA user_version(1)",
    "EXPLAIN QUERY PLAN SELECT * FROM t",
    "SELECT * FROM json_each('[1,2]')",
    "SELECT sqlite_version()",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 10) SELECT sum(x) FROM c",
    "SELECT * FROM f WHERE f MATCH 'hello'",
    "SELECT id FROM vector_top_k('vi', vector32('[1,2,3]'), 2)",
    "SELECT count(*) FROM f_data",
    "PRAGMA integrity_check",
    "CREATE TABLE uk(k TEXT PRIMARY KEY, v UNIQUE)",
    "INSERT INTO uk VALUES ('a', 1)",  # automatic indexes
    "SELECT v FROM uk WHERE k = 'a'",
    "UPDATE uk SET v = 2 WHERE k = 'a'",
    "DELETE FROM uk",
    "VACUUM",
]


def corpus() -> list[str]:
    out = list(PRAGMAS) + list(OTHERS)
    for i, (template, table) in enumerate(itertools.product(TEMPLATES, RESERVED)):
        out.append(template.format(t=table, i=i))
    for table in RESERVED:
        for q in _quotings(table):
            out.append(f"SELECT * FROM {q}")
    return out


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(
        Settings(
            data_dir=str(tmp_path / "n"),
            node_id="adv",
            admin_token="admin",
            tokens="acme:acme-token",
            statement_timeout_seconds=2.0,
            max_txn_bytes=8 * 1024**2,
        ),
        store=file_store,
    )
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        c.node = node
        c.store = file_store
        yield c


def _sql(client, sql, params=None, transaction=True):
    return client.post(
        f"/v1/databases/{DB}/sql",
        headers=TOKEN,
        json={"statements": [{"sql": sql, "params": params or []}], "transaction": transaction},
    )


def _reserved_digest(node) -> str:
    def dump(conn):
        h = hashlib.sha256()
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type='table' AND name LIKE '\\_\\_memoturn%' ESCAPE '\\' "
                "ORDER BY name"
            ).fetchall()
        ]
        assert len(names) >= 2
        for name in names:
            h.update(name.encode())
            for row in sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{name}"').fetchall()):
                h.update(row.encode())
        h.update(repr(conn.execute("PRAGMA journal_mode").fetchall()).encode())
        return h.hexdigest()

    return node.read(DB, dump)[0]


def _seed(client) -> None:
    assert client.post("/v1/databases", headers={"Authorization": "Bearer admin"}, json={"name": DB}).status_code == 201
    for k in range(5):
        assert client.put(f"/v1/databases/{DB}/kv/k{k}", headers=TOKEN, json={"value": k}).status_code == 200
    setup = [
        "CREATE TABLE t(a)",
        "CREATE TABLE v(id INTEGER PRIMARY KEY, e F32_BLOB(3))",
        "CREATE INDEX vi ON v(libsql_vector_idx(e))",
        "INSERT INTO v VALUES (1, vector32('[1,2,3]'))",
        "CREATE VIRTUAL TABLE f USING fts5(x)",
        "INSERT INTO f VALUES ('hello world')",
    ]
    r = client.post(f"/v1/databases/{DB}/sql", headers=TOKEN, json={"statements": [{"sql": s} for s in setup]})
    assert r.status_code == 200, r.text


def test_the_token_screen_sees_through_quoting():
    assert [t.value for t in tokenize("SELECT \"a\"\"b\", [c d], `e`, 'f''g' -- x\n/* y */")] == [
        "select",
        'a"b',
        ",",
        "c d",
        ",",
        "e",
        ",",
        "f'g",
    ]
    assert check_statement("CREATE TRIGGER x AFTER INSERT ON t BEGIN INSERT INTO t VALUES (1); SELECT 2; END") == "sql"


def test_adversarial_corpus_is_refused_and_reserved_data_unchanged(client):
    _seed(client)
    before = _reserved_digest(client.node)
    statements = corpus()
    assert len(statements) >= 150
    outcomes: dict[int, int] = {}
    for sql in statements:
        params = ["__memoturn_kv"] if "?" in sql else []
        for transaction in (True, False):
            r = _sql(client, sql, params, transaction)
            outcomes[r.status_code] = outcomes.get(r.status_code, 0) + 1
            assert 400 <= r.status_code < 500, (sql, transaction, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("application/problem+json")
    assert _reserved_digest(client.node) == before
    for sql in HARMLESS:
        r = _sql(client, sql, transaction=sql != "VACUUM")
        assert r.status_code == 200, (sql, r.text)
    assert _reserved_digest(client.node) == before
    # Capture still sees every commit: a durable write reaches the store and restores elsewhere.
    r = client.put(
        f"/v1/databases/{DB}/kv/after", headers={**TOKEN, "Memoturn-Durability": "durable"}, json={"value": "kept"}
    )
    assert r.status_code == 200
    txid = int(r.headers["Memoturn-Txid"])
    fresh = Node(Settings(data_dir=str(client.node.settings.data_dir) + "-fresh", node_id="fresh"), store=client.store)
    fresh.start()
    try:
        assert fresh.kv_get(DB, "after")[0]["value"] == "kept"
        assert fresh.read(DB, lambda c: None)[1] == txid
    finally:
        fresh.stop()
    print("corpus outcomes:", outcomes, "statements:", len(statements))


def test_a_runaway_statement_is_stopped_and_the_node_keeps_serving(client):
    _seed(client)
    other = "acme--other"
    assert (
        client.post("/v1/databases", headers={"Authorization": "Bearer admin"}, json={"name": other}).status_code == 201
    )
    box: dict = {}

    def runaway():
        box["r"] = _sql(client, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c")

    th = threading.Thread(target=runaway)
    th.start()
    served = 0
    while th.is_alive():
        assert client.get("/v1/health").status_code == 200
        # Another database of the node keeps taking writes (this one's writes wait for its lock).
        assert client.put(f"/v1/databases/{other}/kv/live", headers=TOKEN, json={"value": served}).status_code == 200
        served += 1
    th.join()
    r = box["r"]
    assert r.status_code == 400 and r.json()["type"] == "statement-timeout", r.text
    assert served > 5  # the node answered while the statement ran
    assert _sql(client, "SELECT count(*) FROM t").status_code == 200  # the branch works after the kill
    assert client.get(f"/v1/databases/{DB}/kv/k1", headers=TOKEN).json()["value"] == 1


def test_a_transaction_may_not_write_past_its_budget(client):
    _seed(client)
    big = "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 20) SELECT zeroblob(1000000) FROM c"
    r = _sql(client, big)
    assert r.status_code == 413 and r.json()["type"] == "transaction-too-large", r.text
    assert _sql(client, "SELECT count(*) FROM t").json()["results"][0]["rows"] == [[0]]
    r = _sql(
        client,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100000) SELECT randomblob(1000) FROM c",
    )
    assert r.status_code == 413 and r.json()["type"] == "result-too-large", r.text


def test_a_change_that_bypasses_capture_is_never_acknowledged(client):
    """Whatever slips past the screens, a commit capture did not see fails its request."""
    _seed(client)
    node = client.node
    r = client.put(f"/v1/databases/{DB}/kv/seen", headers=TOKEN, json={"value": 1})
    assert r.status_code == 200
    db = node.open(DB)
    with db.lock:  # what `PRAGMA wal_checkpoint(TRUNCATE)` from user SQL did: the file changes under capture
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    r = client.put(f"/v1/databases/{DB}/kv/next", headers=TOKEN, json={"value": 2})
    assert r.status_code >= 500 and r.json()["type"] == "capture-bypassed", r.text
    assert sample(node.metrics.capture_bypassed) == 1
    # The branch comes back from the store with every acknowledged write.
    assert client.get(f"/v1/databases/{DB}/kv/seen", headers=TOKEN).json()["value"] == 1
    assert client.put(f"/v1/databases/{DB}/kv/next", headers=TOKEN, json={"value": 3}).status_code == 200
    assert client.get(f"/v1/databases/{DB}/kv/next", headers=TOKEN).json()["value"] == 3


def test_the_standard_loss_window_holds_while_a_long_statement_runs(client):
    """Shipping is not starved by user SQL: standard writes reach the store while another
    database's statement is still running to its deadline."""
    from memoturn.storage.manifest import load_manifest

    _seed(client)
    other = "acme--busy"
    assert (
        client.post("/v1/databases", headers={"Authorization": "Bearer admin"}, json={"name": other}).status_code == 201
    )
    th = threading.Thread(
        target=lambda: client.post(
            f"/v1/databases/{other}/sql",
            headers=TOKEN,
            json={
                "statements": [
                    {"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"}
                ]
            },
        )
    )
    th.start()
    time.sleep(0.3)
    assert th.is_alive(), "the statement should be running: the test proves nothing otherwise"
    for i in range(3):
        r = client.put(f"/v1/databases/{DB}/kv/w{i}", headers=TOKEN, json={"value": i})
        assert r.status_code == 200
        txid = int(r.headers["Memoturn-Txid"])
        # Causal, not a stopwatch: the write must reach the store while the statement still runs.
        while load_manifest(client.store, DB, "main")[0].head_txid < txid:
            assert th.is_alive(), "the write shipped only after the long statement ended: shipping was starved"
            time.sleep(0.01)
    th.join()


def test_named_parameters_bind_by_name_and_bad_ones_are_a_400(client):
    _seed(client)
    ok = _sql(
        client,
        "INSERT INTO t VALUES (:a || '-' || @b || '-' || $c || '-' || :a || ' :not_a_param')",
        {"a": "x", ":b": "y", "$c": "z"},
    )
    assert ok.status_code == 200, ok.text
    got = _sql(client, "SELECT a FROM t WHERE a LIKE :p", {"p": "x-%"})
    assert got.json()["results"][0]["rows"] == [["x-y-z-x :not_a_param"]]
    for sql, params, fragment in [
        ("SELECT :missing", {"a": 1}, "no value for parameter ':missing'"),
        ("SELECT ?, :a", {"a": 1}, "positional parameter '?'"),
        ("SELECT ?1", {"a": 1}, "positional parameter '?1'"),
    ]:
        r = _sql(client, sql, params)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["type"] == "invalid-params" and fragment in r.json()["detail"]
    assert _sql(client, "SELECT ?, ?", [1, 2]).json()["results"][0]["rows"] == [[1, 2]]
