"""Shipping is paced per branch (``ship_interval_seconds``): a busy branch's commits travel in
one segment, and a durable writer is never held back by the pacing."""

from __future__ import annotations

import json
import time

from memoturn.data import kv
from memoturn.storage.manifest import load_manifest
from support.nodes import make_node


def _put(node, db, key, value, durable=False):
    return node.write(db, lambda c: kv.put(c, key, json.dumps(value), None), durable=durable)[1]


def _stored_head(store, db):
    return load_manifest(store, db, "main")[0]


def test_a_busy_branchs_commits_ship_together(tmp_path, file_store):
    node = make_node(tmp_path, file_store, ship_interval_seconds=5.0)
    try:
        node.create_database("busy")
        first = _put(node, "busy", "k", 0)  # ships at once: nothing shipped before
        last = first
        for i in range(1, 21):
            last = _put(node, "busy", "k", i)
        deadline = time.monotonic() + 60  # a hang guard, not a latency assertion
        while _stored_head(file_store, "busy").head_txid < last and time.monotonic() < deadline:
            time.sleep(0.05)
        manifest = _stored_head(file_store, "busy")
        assert manifest.head_txid == last
        # Everything after the first ship waited for the interval and went up as one segment
        # (at most one more: a commit that landed while the first ship was in flight).
        later = [s for s in manifest.segments if s.last_txid > first]
        assert 1 <= len(later) <= 2, [(s.first_txid, s.last_txid) for s in manifest.segments]
        assert later[-1].last_txid == last
        assert sorted(t for s in manifest.segments for t in range(s.first_txid, s.last_txid + 1)) == list(
            range(manifest.segments[0].first_txid, last + 1)
        )
    finally:
        node.stop()


def test_a_durable_write_ships_at_once_with_the_paced_tail(tmp_path, file_store):
    # An interval far beyond the durable timeout: were the durable write paced, it would fail
    # with 503 durable-timeout instead of returning.
    node = make_node(tmp_path, file_store, ship_interval_seconds=60.0, durable_timeout_seconds=20.0)
    try:
        node.create_database("d")
        _put(node, "d", "a", 1)  # ships at once
        deadline = time.monotonic() + 60
        while _stored_head(file_store, "d").head_txid < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        paced = _put(node, "d", "b", 2)  # standard: now waits out the 60 s interval
        durable = _put(node, "d", "c", 3, durable=True)
        manifest = _stored_head(file_store, "d")
        assert durable > paced
        assert manifest.head_txid == durable  # the paced commit went up with it
    finally:
        node.stop()
