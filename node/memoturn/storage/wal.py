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
import io
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
    """Incremental, verifying reader of one database's ``-wal`` file.

    The file stays open between reads (one capture per commit: opening it each time, a buffered
    read and the size checks were most of the capture's cost), so the owner calls :meth:`close`
    when it closes its connection; a file SQLite deleted meanwhile (its link count is 0) is
    opened again by path (its salts tell whether it is a new generation). Each read is an ``fstat``, the header and, only if the file grew or
    its generation changed, the bytes past the last commit. Page checksums are computed for a
    run of frames at once and chained frame by frame, which verifies exactly what the loop does.
    """

    def __init__(self, wal_path: str) -> None:
        self.wal_path = wal_path
        self.page_size = 0
        self._salts: tuple[int, int] | None = None
        self._big_endian = False
        self._offset = 0  # end of the last committed frame in the current generation
        self._cksum = (0, 0)
        self._file: io.FileIO | None = None
        self._size = 0  # the file's size at the last read

    def reset(self) -> None:
        """Forget the position (after a checkpoint that truncated the WAL)."""
        self._salts = None
        self._offset = 0
        self._size = 0

    def close(self) -> None:
        """Close the file (the owner closed its connection, after which SQLite may delete it).
        The position is kept: the next read opens the file again and follows it by its salts."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _fd(self) -> int | None:
        """The open file's descriptor, the file opened again if SQLite deleted it; None if absent."""
        f = self._file
        if f is not None and os.fstat(f.fileno()).st_nlink == 0:
            f.close()  # deleted: a new file is followed by its salts, as after a restart
            f = self._file = None
        if f is None:
            try:
                f = self._file = open(self.wal_path, "rb", buffering=0)  # noqa: SIM115 - kept open
            except FileNotFoundError:
                return None
        return f.fileno()

    def read_commits(self) -> list[Commit]:
        """Return every transaction committed since the previous call, in order."""
        fd = self._fd()
        size = os.fstat(fd).st_size if fd is not None else 0
        header = os.pread(fd, WAL_HEADER_SIZE, 0) if fd is not None and size >= WAL_HEADER_SIZE else b""
        if fd is None or len(header) < WAL_HEADER_SIZE:
            self.reset()
            self._size = size
            return []
        self._size = size
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
        if self._size - self._offset < FRAME_HEADER_SIZE + self.page_size:
            return []  # no whole frame past the last commit
        return self._parse(os.pread(fd, self._size - self._offset, self._offset))

    def _parse(self, data: bytes) -> list[Commit]:
        frame_size = FRAME_HEADER_SIZE + self.page_size
        frames = len(data) // frame_size
        commits: list[Commit] = []
        pending = Commit()
        s0, s1 = self._cksum
        salts = self._salts
        big_endian = self._big_endian
        done = 0  # bytes of ``data`` up to the end of the last commit frame
        for first in range(0, frames, _BATCH_FRAMES):
            count = min(_BATCH_FRAMES, frames - first)
            sums = _page_sums(data, first * frame_size, count, frame_size, self.page_size, big_endian)
            m = _powers(self.page_size // 8)[1]
            for i in range(count):
                pos = (first + i) * frame_size
                pgno, commit_size, fs1, fs2, fc1, fc2 = struct.unpack_from(">6I", data, pos)
                if (fs1, fs2) != salts:
                    return commits  # stale frame from an older generation: end of log
                s0, s1 = wal_checksum(data[pos : pos + 8], s0, s1, big_endian)
                r0, r1 = sums[i]
                s0, s1 = (r0 + m[0] * s0 + m[1] * s1) & 0xFFFFFFFF, (r1 + m[2] * s0 + m[3] * s1) & 0xFFFFFFFF
                if (s0, s1) != (fc1, fc2):
                    raise WalCorrupt(
                        f"{self.wal_path}: checksum mismatch in frame at offset {self._offset + pos - done} "
                        f"(page {pgno})"
                    )
                if pgno == 0:
                    raise WalCorrupt(f"{self.wal_path}: frame for page 0")
                pending.pages[pgno] = data[pos + FRAME_HEADER_SIZE : pos + frame_size]
                if commit_size:
                    pending.db_pages = commit_size
                    commits.append(pending)
                    pending = Commit()
                    self._offset += pos + frame_size - done
                    done = pos + frame_size
                    self._cksum = (s0, s1)
        return commits

    def has_tail(self) -> bool:
        """Whether the file held frames past the last commit at the last read (a rolled-back or
        killed transaction's): the next commit overwrites them only partly, so the caller checkpoints."""
        return self._size > (self._offset if self._salts is not None else 0)

    @property
    def wal_bytes(self) -> int:
        """Size of the WAL file at the last :meth:`read_commits` (0 if absent)."""
        return self._size


#: Frames whose page checksums are computed in one array product (bounds the temporary array).
_BATCH_FRAMES = 256


def _page_sums(
    data: bytes, start: int, count: int, frame_size: int, page_size: int, big_endian: bool
) -> list[list[int]]:
    """Each of ``count`` frames' page checksum started from (0, 0), as (count, 2) uint64: with
    ``M**n`` of :func:`_powers` a page then continues any running checksum in two products."""
    pages = np.ndarray(
        shape=(count, page_size // 4),
        dtype=">u4" if big_endian else "<u4",
        buffer=data,
        offset=start + FRAME_HEADER_SIZE,
        strides=(frame_size, 4),
    )
    coefficients, _m = _powers(page_size // 8)
    sums: list[list[int]] = ((pages.astype(np.uint64) @ coefficients.T) & 0xFFFFFFFF).tolist()
    return sums
