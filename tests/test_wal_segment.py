"""WAL capture and the sealed formats: verification catches every flipped byte."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memoturn.sql.connection import connect
from memoturn.storage.segment import Segment, SegmentCorrupt, Txn, decode_segment, encode_segment, merge_segments
from memoturn.storage.snapshot import Snapshot, SnapshotCorrupt, decode_snapshot, encode_snapshot
from memoturn.storage.wal import WalCorrupt, WalReader, wal_checksum


def _db(tmp_path):
    path = str(tmp_path / "w.db")
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
    return path, conn


def _loop_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's walChecksumBytes, word by word, as the reference."""
    words = struct.unpack((">" if big_endian else "<") + f"{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.one_of(st.integers(0, 40), st.sampled_from([64, 128, 512, 1024, 8192])),
    seed=st.binary(min_size=8, max_size=8),
    s0=st.integers(0, 2**32 - 1),
    s1=st.integers(0, 2**32 - 1),
    big_endian=st.booleans(),
    saturated=st.booleans(),
)
def test_checksum_matches_sqlites_word_loop(pairs, seed, s0, s1, big_endian, saturated):
    """The closed form used for pages equals SQLite's loop for every length, seed and byte order
    (all-ones input is the case where uint64 wrap-around would show)."""
    data = b"\xff" * (8 * pairs) if saturated else (seed * pairs)[: 8 * pairs]
    if not saturated and pairs:
        data = bytes((b * 31 + i) & 0xFF for i, b in enumerate(data))
    assert wal_checksum(data, s0, s1, big_endian) == _loop_checksum(data, s0, s1, big_endian)


def test_reader_returns_each_commit_once_with_final_pages(tmp_path):
    path, conn = _db(tmp_path)
    reader = WalReader(path + "-wal")
    conn.execute("CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
    first = reader.read_commits()
    assert len(first) == 1 and first[0].db_pages == 2 and set(first[0].pages) == {1, 2}
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t(b) VALUES (zeroblob(20000))")
    conn.execute("COMMIT")
    conn.execute("INSERT INTO t(b) VALUES ('x')")
    commits = reader.read_commits()
    assert len(commits) == 2
    assert commits[0].db_pages >= 6  # the blob spans overflow pages
    assert reader.read_commits() == []
    assert all(len(p) == reader.page_size for c in commits for p in c.pages.values())


def test_reader_follows_a_truncating_checkpoint(tmp_path):
    path, conn = _db(tmp_path)
    reader = WalReader(path + "-wal")
    conn.execute("CREATE TABLE t(a)")
    assert len(reader.read_commits()) == 1
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    reader.reset()
    conn.execute("INSERT INTO t VALUES (1)")
    commits = reader.read_commits()
    assert len(commits) == 1 and commits[0].db_pages == 2


def test_reader_keeps_the_file_open_and_follows_a_deleted_and_recreated_wal(tmp_path):
    """The reader keeps its file open between reads; when the last connection closes, SQLite
    checkpoints and deletes the WAL, and the next connection's new file is followed by its salts."""
    path, conn = _db(tmp_path)
    reader = WalReader(path + "-wal")
    conn.execute("CREATE TABLE t(a)")
    assert len(reader.read_commits()) == 1
    conn.close()
    assert not os.path.exists(path + "-wal")
    assert reader.read_commits() == [] and reader.wal_bytes == 0
    _, conn = _db(tmp_path)
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("INSERT INTO t VALUES (2)")
    commits = reader.read_commits()
    assert len(commits) == 2 and all(c.db_pages == 2 for c in commits)
    reader.close()  # closed by its owner: the next read opens it again, at the same position
    conn.execute("INSERT INTO t VALUES (3)")
    assert len(reader.read_commits()) == 1
    assert reader.read_commits() == []


def test_reader_sees_a_rolled_back_tail(tmp_path):
    path, conn = _db(tmp_path)
    reader = WalReader(path + "-wal")
    conn.execute("PRAGMA cache_size=2").fetchall()  # a big transaction spills pages before its commit
    conn.execute("CREATE TABLE t(a, b)")
    reader.read_commits()
    assert not reader.has_tail()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (1, randomblob(500000))")  # spills pages into the WAL
    conn.execute("ROLLBACK")
    assert reader.read_commits() == []
    assert reader.has_tail() and reader.wal_bytes > 500000


def test_reader_verifies_a_commit_longer_than_one_batch_of_frames(tmp_path):
    """Page checksums are computed a few hundred frames at a time and chained: a commit of 300+
    pages reads back whole, and a byte flipped in its 300th frame is caught there."""
    path, conn = _db(tmp_path)
    conn.execute("CREATE TABLE t(a)")
    conn.execute("INSERT INTO t VALUES (zeroblob(300 * 4096))")
    commits = WalReader(path + "-wal").read_commits()
    assert len(commits) == 2 and len(commits[1].pages) > 300
    reader = WalReader(path + "-wal")
    reader.read_commits()
    frame = 24 + reader.page_size
    first_frames = len(commits[0].pages)
    with open(path + "-wal", "r+b") as f:
        f.seek(32 + (first_frames + 299) * frame + 24 + 7)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(WalCorrupt, match=f"offset {32 + (first_frames + 299) * frame} "):
        WalReader(path + "-wal").read_commits()


def test_reader_rejects_a_flipped_byte_in_a_committed_frame(tmp_path):
    path, conn = _db(tmp_path)
    conn.execute("CREATE TABLE t(a)")
    conn.execute("INSERT INTO t VALUES (1)")
    with open(path + "-wal", "r+b") as f:
        f.seek(32 + 24 + 100)  # inside the first frame's page
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WalCorrupt, match="checksum mismatch"):
        WalReader(path + "-wal").read_commits()


def test_reader_rejects_a_corrupt_header(tmp_path):
    path, conn = _db(tmp_path)
    conn.execute("CREATE TABLE t(a)")
    with open(path + "-wal", "r+b") as f:
        f.seek(12)
        f.write(b"\x00\x00\x00\x07")  # checkpoint sequence, covered by the header checksum
    with pytest.raises(WalCorrupt, match="header checksum"):
        WalReader(path + "-wal").read_commits()


def _segment() -> Segment:
    return Segment(
        "db1",
        "main",
        3,
        512,
        [
            Txn(5, 1.0, 2, {1: b"a" * 512, 2: b"b" * 512}),
            Txn(6, 2.0, 3, {3: b"c" * 512}),
        ],
    )


def test_segment_roundtrip_and_every_flipped_byte_is_caught():
    data = encode_segment(_segment())
    seg = decode_segment(data)
    assert (seg.first_txid, seg.last_txid, seg.epoch) == (5, 6, 3)
    assert seg.txns[1].pages[3] == b"c" * 512
    for offset in range(0, len(data), 97):
        bad = bytearray(data)
        bad[offset] ^= 0x01
        with pytest.raises(SegmentCorrupt):
            decode_segment(bytes(bad))
    with pytest.raises(SegmentCorrupt):
        decode_segment(data[:-1])


def test_merge_requires_contiguous_txids():
    a = _segment()
    b = Segment("db1", "main", 3, 512, [Txn(7, 3.0, 3, {})])
    merged = merge_segments([a, b])
    assert [t.txid for t in merged.txns] == [5, 6, 7]
    with pytest.raises(ValueError):
        merge_segments([a, Segment("db1", "main", 3, 512, [Txn(9, 3.0, 3, {})])])


def test_snapshot_roundtrip_and_corruption():
    snap = Snapshot("db1", "main", 2, 10, 5.0, 512, b"z" * 1024)
    data = encode_snapshot(snap)
    assert decode_snapshot(data).data == snap.data
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0x40
    with pytest.raises(SnapshotCorrupt, match="checksum"):
        decode_snapshot(bytes(bad))
