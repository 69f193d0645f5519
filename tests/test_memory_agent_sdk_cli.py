"""Time windows, forget by filter and a profile's branches from the SDK and the CLI, against a real memoturnd."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from memoturn.client import Memoturn, ProblemError
from support.nodes import Memoturnd

T0 = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    data = tmp_path_factory.mktemp("agent-sdk")
    proc = Memoturnd(str(data), f"file://{data}/store")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.close()


def test_sdk_windows_forget_matching_and_branches(daemon):
    with Memoturn(daemon.url) as mt:
        assert mt.health()["status"] == "ok"
        bob = mt.profile("acme", "bob")
        assert bob.create()["memories"] == 0
        bob.database().checkpoint("empty")
        bob.add("Bob ran 5 km", event_time=T0, tags=["sport"])
        bob.add("Bob swam 1 km", event_time=T0 + DAY, tags=["sport"])
        bob.add("Bob read a book", event_time=T0 + 2 * DAY)
        page = bob.list(since=T0 + DAY / 2, until="2023-11-16T00:00:00Z")
        assert [m["content"] for m in page["memories"]] == ["Bob swam 1 km"]
        assert len(bob.list(tags=["sport"])["memories"]) == 2
        assert bob.recall("km", since=T0 + DAY)["results"][0]["memory"]["content"] == "Bob swam 1 km"
        dry = bob.forget_matching(tags=["sport"], until=T0, dry_run=True)
        assert dry["count"] == 1 and dry["dry_run"] is True
        assert bob.forget_matching(tags=["sport"], until=T0)["ids"] == dry["ids"]
        with pytest.raises(ProblemError) as bad:
            bob.forget_matching(since=T0 + DAY, until=T0)
        assert bad.value.status == 400 and bad.value.type == "invalid-window"

        bob.database().fork("try")
        scratch = bob.on_branch("try")
        scratch.add("Bob might take up rowing")
        assert len(scratch.list()["memories"]) == 3 and len(bob.list()["memories"]) == 2
        assert scratch.stats()["current"] == 3
        scratch.database().delete_branch()
        with pytest.raises(ProblemError) as gone:
            scratch.list()
        assert gone.value.status == 404
        bob.database().rewind(checkpoint="empty")
        assert bob.list()["memories"] == []


def test_cli_windows_forget_matching_and_branch(daemon):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "memoturn.cli", "--url", daemon.url, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(*args):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        return r.stdout

    ok("memory", "add", "acme", "cli", "an old note", "--event-time", str(T0), "--tag", "old")
    ok("memory", "add", "acme", "cli", "a note from today", "--tag", "new")
    out = json.loads(ok("--json", "memory", "list", "acme", "cli", "--window", "today"))
    assert [m["content"] for m in out["memories"]] == ["a note from today"]
    out = json.loads(ok("--json", "memory", "list", "acme", "cli", "--until", "2023-11-15T00:00:00Z"))
    assert [m["content"] for m in out["memories"]] == ["an old note"]
    first = json.loads(ok("--json", "memory", "list", "acme", "cli", "--limit", "1"))
    second = json.loads(ok("--json", "memory", "list", "acme", "cli", "--limit", "1", "--cursor", first["next_cursor"]))
    assert {first["memories"][0]["content"], second["memories"][0]["content"]} == {"an old note", "a note from today"}
    assert "a note from today" in ok("memory", "recall", "acme", "cli", "note", "--window", "past 2 hours")
    assert "would forget 1 memories" in ok("memory", "forget-matching", "acme", "cli", "--tag", "old", "--dry-run")
    assert "forgot 1 memories" in ok("memory", "forget-matching", "acme", "cli", "--until", "2024-01-01T00:00:00Z")
    # bad input: one line on stderr, non-zero exit, no traceback
    for args, code in (
        (("memory", "list", "acme", "cli", "--window", "next week"), 2),
        (("memory", "list", "acme", "cli", "--window", "today", "--since", "1"), 2),
        (("memory", "recall", "acme", "cli", "x", "--as-of", "soon"), 2),
        (("memory", "forget-matching", "acme", "cli"), 1),
        (("memory", "list", "acme", "cli", "--branch", "nope"), 1),
    ):
        r = cli(*args)
        assert r.returncode == code, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    ok("branch", "fork", "acme--cli", "side")
    ok("memory", "add", "acme", "cli", "only on the side branch", "--branch", "side")
    side = json.loads(ok("--json", "memory", "list", "acme", "cli", "--branch", "side"))
    assert sorted(m["content"] for m in side["memories"]) == ["a note from today", "only on the side branch"]
    assert "only on the side branch" not in ok("memory", "list", "acme", "cli")
