"""The embedded default as a user runs it: memoturnd and the memoturn CLI as processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from memoturn.client import Memoturn
from memoturn.storage.store.file import FileStore
from support.nodes import Memoturnd, make_node


def cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "memoturn.cli", "--url", url, *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def daemon(tmp_path):
    data = tmp_path / "data"
    proc = Memoturnd(str(data), f"file://{data}/store")
    proc.wait_ready()
    yield proc
    proc.close()


def test_cli_round_trip_and_one_line_errors(daemon):
    assert cli(daemon.url, "db", "create", "acme--alice").returncode == 0
    r = cli(daemon.url, "--json", "kv", "put", "acme--alice", "greeting", '{"hi": 1}', "--durable")
    assert r.returncode == 0 and json.loads(r.stdout)["txid"] >= 1
    r = cli(daemon.url, "--json", "kv", "get", "acme--alice", "greeting")
    assert json.loads(r.stdout) == {"hi": 1}
    r = cli(
        daemon.url, "--json", "sql", "acme--alice", "CREATE TABLE n(x)", "INSERT INTO n VALUES (42)", "SELECT x FROM n"
    )
    assert json.loads(r.stdout)["results"][2]["rows"] == [[42]]
    assert json.loads(cli(daemon.url, "--json", "db", "list").stdout) == ["acme--alice"]
    assert cli(daemon.url, "db", "list").stdout.strip() == "acme--alice"

    for args, code, needle in [
        (("kv", "get", "acme--alice", "missing"), 1, "404"),
        (("db", "create", "Not Valid"), 1, "invalid database name"),
        (("sql", "acme--alice", "SELECT * FROM __memoturn_kv"), 1, "reserved"),
        (("db", "show", "nope"), 1, "does not exist"),
    ]:
        r = cli(daemon.url, *args)
        assert r.returncode == code and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    r = cli("http://127.0.0.1:9", "db", "list")
    assert r.returncode == 2 and "cannot reach" in r.stderr and "Traceback" not in r.stderr


def test_memory_commands_export_and_import(daemon, tmp_path):
    r = cli(
        daemon.url, "memory", "add", "acme", "bob", "Bob plays chess on Sundays", "--type", "fact", "--tag", "hobby"
    )
    assert r.returncode == 0 and r.stdout.startswith("stored "), r.stderr
    cli(daemon.url, "memory", "add", "acme", "bob", "Bob likes tea", "--type", "preference", "--subject", "drink")
    cli(
        daemon.url, "memory", "add", "acme", "bob", "Bob likes coffee now", "--type", "preference", "--subject", "drink"
    )
    r = cli(daemon.url, "memory", "recall", "acme", "bob", "what game does Bob play")
    assert r.returncode == 0 and "Bob plays chess on Sundays" in r.stdout.splitlines()[0]
    r = cli(daemon.url, "--json", "memory", "list", "acme", "bob", "--include-superseded")
    assert len(json.loads(r.stdout)["memories"]) == 3
    # relationships travel with the memories: one between current memories, one to a superseded one
    bob = Memoturn(daemon.url).profile("acme", "bob")
    ids = {m["content"]: m["id"] for m in bob.list(include_superseded=True)["memories"]}
    chess, tea, coffee = ids["Bob plays chess on Sundays"], ids["Bob likes tea"], ids["Bob likes coffee now"]
    bob.relate(coffee, chess, "follows", weight=0.5, properties={"note": "after the game"})
    bob.relate(tea, chess, "relates_to")
    extra = [bob.relate(chess, coffee, f"t{i}")["relationship"]["id"] for i in range(3)]
    bob.unrelate(extra[0])  # removed: not exported
    page = bob.relationships(limit=2)
    assert len(page["relationships"]) == 2 and page["next_cursor"]
    rest = bob.relationships(limit=2, cursor=page["next_cursor"])
    assert len(rest["relationships"]) == 2 and rest["next_cursor"] is None
    assert extra[0] not in {rel["id"] for rel in page["relationships"] + rest["relationships"]}
    dump = tmp_path / "bob.jsonl"
    assert cli(daemon.url, "export", "acme", "bob", "--out", str(dump)).returncode == 0
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(lines) == 3 + 4 and sum("relationship" in line for line in lines) == 4
    r = cli(daemon.url, "--json", "import", "acme", "bob-copy", str(dump))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["imported"] == 2  # current memories only
    assert (out["relationships"], out["relationships_skipped"]) == (3, 1)  # the one from tea had no end
    r = cli(daemon.url, "--json", "memory", "list", "acme", "bob-copy")
    copied = {m["content"]: m["id"] for m in json.loads(r.stdout)["memories"]}
    assert sorted(copied) == ["Bob likes coffee now", "Bob plays chess on Sundays"]
    links = Memoturn(daemon.url).profile("acme", "bob-copy").relationships()["relationships"]
    follows = [rel for rel in links if rel["type"] == "follows"]
    assert len(links) == 3 and len(follows) == 1
    assert follows[0]["source"] == copied["Bob likes coffee now"]
    assert follows[0]["target"] == copied["Bob plays chess on Sundays"]
    assert (follows[0]["weight"], follows[0]["properties"]) == (0.5, {"note": "after the game"})
    r = cli(daemon.url, "--json", "import", "acme", "bob-copy", str(dump))  # again: nothing new
    assert (json.loads(r.stdout)["imported"], json.loads(r.stdout)["relationships"]) == (0, 0)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"content": "ok"}\n{"relationship": {"source": "a"}}\n')
    r = cli(daemon.url, "import", "acme", "bob-copy", str(broken))
    assert r.returncode == 2 and "broken.jsonl:2: a relationship needs" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"content": "ok"}\nnot json\n')
    r = cli(daemon.url, "import", "acme", "bob-copy", str(bad))
    assert r.returncode == 2 and "bad.jsonl:2: not JSON" in r.stderr and "Traceback" not in r.stderr
    r = cli(daemon.url, "memory", "add", "acme", "bob", "x", "--metadata", "[1]")
    assert r.returncode == 2 and "--metadata must be a JSON object" in r.stderr
    r = cli(daemon.url, "memory", "forget", "acme", "bob", "no-such-id")
    assert r.returncode == 1 and "404" in r.stderr


def test_bad_settings_exit_with_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "memoturn.server"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "MEMOTURN_DURABILITY": "sometimes", "MEMOTURN_DATA_DIR": str(tmp_path)},
    )
    assert r.returncode == 2 and "MEMOTURN_DURABILITY" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "memoturn.server", "--store", "ftp://x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "MEMOTURN_DATA_DIR": str(tmp_path)},
    )
    assert r.returncode == 2 and "unsupported store URL" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_ships_the_tail_so_a_planned_restart_loses_nothing(tmp_path):
    data = tmp_path / "data"
    store_url = f"file://{data}/store"
    proc = Memoturnd(str(data), store_url)
    try:
        proc.wait_ready()
        proc.client.post("/v1/databases", json={"name": "planned"})
        for i in range(200):  # standard mode: acknowledged on local commit
            assert proc.client.put(f"/v1/databases/planned/kv/k{i}", json={"value": i}).status_code == 200
        proc.kill(signal.SIGTERM)
        assert proc.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutdown
        assert "every committed txid is in object storage" in open(proc.log_path).read()
    finally:
        proc.close()
    fresh = make_node(tmp_path, FileStore(f"{data}/store"), name="fresh")
    try:
        from memoturn.data import kv

        rows, txid = fresh.read("planned", lambda c: c.execute("SELECT count(*) FROM __memoturn_kv").fetchone()[0])
        assert rows == 200 and txid >= 200
        assert fresh.read("planned", lambda c: kv.get(c, "k199"))[0]["value"] == 199
    finally:
        fresh.stop()
