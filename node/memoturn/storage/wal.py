"""Read committed transactions out of a SQLite/libSQL WAL file, verifying while reading.

The node disables automatic checkpointing, so every page a transaction writes lands in the
WAL before the node decides to checkpoint. :class:`WalReader` remembers where the last
committed frame ended and, on each call, returns the transactions committed since, as
``Commit(pages, db_pages)``. It verifies what it reads exactly as SQLite's recovery does:

* the WAL header checksum, the page size and the magic (which fixes the checksum byte order);
* each frame's salts against the header (a mismatch means a stale frame of an older WAL
  generation: the end of the log, not an error);
* each frame's cumulative checksum. A frame whose salts match but whose checksum does not is
  corruption and raises :class:`WalCorrupt`.

Frames after the last commit frame belong to no transaction yet and are not returned.
When SQLite restarts or truncates the WAL (new salts), the reader starts over at the new
header. Only the transaction's final image of each page is kept.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass, field

import numpy as np

WAL_HEADER_SIZE = 32
FRAME_HEADER_SIZE = 24
_MAGIC_LE = 0x377F0682
_MAGIC_BE = 0x377F0683


class WalCorrupt(Exception):
    """A WAL frame or header failed verification although its salts matched."""


@dataclass
class Commit:
    """One committed transaction: final page images and the database size after it."""

    pages: dict[int, bytes] = field(default_factory=dict)
    db_pages: int = 0


def wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum over ``data`` (a multiple of 8 bytes), continuing ``(s0, s1)``.

    SQLite's loop is ``s0 += x0 + s1; s1 += x1 + s0`` over word pairs, modulo 2**32: a linear
    recurrence ``v' = M v + (x0, x0 + x1)`` with ``M = [[1, 1], [1, 2]]``, so the result is
    ``M**n v + sum_k M**(n-1-k) u_k``. Long inputs (pages) take that closed form as one numpy
    product with precomputed powers of ``M`` (uint64 arithmetic wraps modulo 2**64, which
    keeps every residue modulo 2**32 exact); short ones (frame headers) run the loop.
    """
    n = len(data) // 8
    if n < _VECTOR_MIN_PAIRS:
        words = struct.unpack((">" if big_endian else "<") + f"{2 * n}I", data)
        mask = 0xFFFFFFFF
        it = iter(words)
        for x0 in it:
            s0 = (s0 + x0 + s1) & mask
            s1 = (s1 + next(it) + s0) & mask
        return s0, s1
    vector = np.frombuffer(data, dtype=">u4" if big_endian else "<u4", count=2 * n).astype(np.uint64)
    coefficients, m = _powers(n)
    r0, r1 = (int(x) for x in coefficients @ vector)  # array arithmetic wraps silently
    return (r0 + m[0] * s0 + m[1] * s1) & 0xFFFFFFFF, (r1 + m[2] * s0 + m[3] * s1) & 0xFFFFFFFF


_VECTOR_MIN_PAIRS = 16


@functools.lru_cache(maxsize=8)
def _powers(n: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A (2, 2n) matrix whose product with the ``n`` interleaved word pairs gives the checksum
    started from (0, 0), and ``M**n`` (which carries a non-zero start)."""
    mask = 0xFFFFFFFF
    p = [(1, 0, 0, 1)]  # M**0, M**1, ... as (p00, p01, p10, p11) modulo 2**32
    for _ in range(n):
        q00, q01, q10, q11 = p[-1]
        p.append(((q00 + q10) & mask, (q01 + q11) & mask, (q00 + 2 * q10) & mask, (q01 + 2 * q11) & mask))
    # Pair k enters as u_k = (x0, x0 + x1), multiplied by M**(n-1-k).
    k = np.zeros((2, 2 * n), dtype=np.uint64)
    for i, q in enumerate(p[n - 1 :: -1] if n else []):
        k[0, 2 * i], k[0, 2 * i + 1] = (q[0] + q[1]) & mask, q[1]
        k[1, 2 * i], k[1, 2 * i + 1] = (q[2] + q[3]) & mask, q[3]
    return k, p[n]


class WalReader:
    """Incremental, verifying reader of one database's ``-wal`` file."""

    def __init__(self, wal_path: str) -> None:
        self.wal_path = wal_path
        self.page_size = 0
        self._salts: tuple[int, int] | None = None
        self._big_endian = False
        self._offset = 0  # end of the last committed frame in the current generation
        self._cksum = (0, 0)

    def reset(self) -> None:
        """Forget the position (after a checkpoint that truncated the WAL)."""
        self._salts = None
        self._offset = 0

    def read_commits(self) -> list[Commit]:
        """Return every transaction committed since the previous call, in order."""
        try:
            f = open(self.wal_path, "rb")
        except FileNotFoundError:
            self.reset()
            return []
        with f:
            header = f.read(WAL_HEADER_SIZE)
            if len(header) < WAL_HEADER_SIZE:
                self.reset()
                return []
            magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", header)
            if magic not in (_MAGIC_LE, _MAGIC_BE):
                raise WalCorrupt(f"{self.wal_path}: bad WAL magic {magic:#x}")
            big_endian = magic == _MAGIC_BE
            if (salt1, salt2) != self._salts:
                # A new WAL generation: verify its header and start after it.
                if wal_checksum(header[:24], 0, 0, big_endian) != (c1, c2):
                    raise WalCorrupt(f"{self.wal_path}: WAL header checksum mismatch")
                if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
                    raise WalCorrupt(f"{self.wal_path}: bad page size {page_size}")
                self._salts = (salt1, salt2)
                self._big_endian = big_endian
                self.page_size = page_size
                self._offset = WAL_HEADER_SIZE
                self._cksum = (c1, c2)
            f.seek(self._offset)
            data = f.read()
        return self._parse(data)

    def _parse(self, data: bytes) -> list[Commit]:
        frame_size = FRAME_HEADER_SIZE + self.page_size
        commits: list[Commit] = []
        pending = Commit()
        pos = 0
        s0, s1 = self._cksum
        salts = self._salts
        while pos + frame_size <= len(data):
            pgno, commit_size, fs1, fs2, fc1, fc2 = struct.unpack_from(">6I", data, pos)
            if (fs1, fs2) != salts:
                break  # stale frame from an older generation: end of log
            page = data[pos + FRAME_HEADER_SIZE : pos + frame_size]
            s0, s1 = wal_checksum(data[pos : pos + 8], s0, s1, self._big_endian)
            s0, s1 = wal_checksum(page, s0, s1, self._big_endian)
            if (s0, s1) != (fc1, fc2):
                raise WalCorrupt(
                    f"{self.wal_path}: checksum mismatch in frame at offset {self._offset + pos} (page {pgno})"
                )
            if pgno == 0:
                raise WalCorrupt(f"{self.wal_path}: frame for page 0")
            pending.pages[pgno] = page
            pos += frame_size
            if commit_size:
                pending.db_pages = commit_size
                commits.append(pending)
                pending = Commit()
                self._offset += pos
                data = data[pos:]
                pos = 0
                self._cksum = (s0, s1)
        return commits

    def has_tail(self) -> bool:
        """Whether the file holds frames past the last commit read (a rolled-back or killed
        transaction's): the next commit overwrites them only partly, so the caller checkpoints."""
        return self.wal_bytes > (self._offset if self._salts is not None else 0)

    @property
    def wal_bytes(self) -> int:
        """Size of the WAL file now (0 if absent)."""
        try:
            return os.path.getsize(self.wal_path)
        except FileNotFoundError:
            return 0
