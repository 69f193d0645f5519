"""libSQL connections close their SQLite handle exactly once (memoturn.sql.connection).

``MALLOC_PERTURB_=118`` makes glibc fill freed memory with 0x76, SQLite's "open" state byte:
a second ``sqlite3_close_v2`` on a freed handle then takes garbage for an open connection and
crashes at once, where in production it crashes only when another thread reuses the block.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import gc, sys
    import libsql
    from memoturn.sql.connection import connect
    from memoturn.storage.local_files import connect as connect_local

    path, how = sys.argv[1], sys.argv[2]
    for i in range(200):
        if how == "binding":
            conn = libsql.connect(path, isolation_level=None)
        elif how == "local":
            conn = connect_local(path, 256)
        else:
            conn = connect(path)
        conn.execute("CREATE TABLE IF NOT EXISTS t(x)")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        # Some rounds keep a cursor alive across the close (as a request thread might).
        cur = conn.execute("SELECT count(*) FROM t") if i % 4 < 2 and how != "binding" else None
        if i % 2 or how == "binding":
            conn.close()
            if how != "binding":
                conn.close()  # again: nothing happens
        del conn, cur  # odd rounds closed explicitly, even ones by garbage collection
        gc.collect()
    print("survived")
    """
)


def _run(tmp_path, how: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MALLOC_PERTURB_": "118",
        "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0",
        "RUST_BACKTRACE": "0",
    }
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "t.db"), how],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", ["connection", "local"])
def test_closing_and_collecting_connections_never_touches_a_freed_handle(tmp_path, how):
    done = _run(tmp_path, how)
    assert done.returncode == 0 and "survived" in done.stdout, (done.returncode, done.stderr[-2000:])


def test_the_binding_alone_still_closes_twice(tmp_path):
    """The harness sees the defect: the binding's own close dies under the same conditions.
    When this fails, libsql fixed tursodatabase/libsql#2251 and the wrapper can go."""
    done = _run(tmp_path, "binding")
    assert done.returncode < 0, (done.returncode, done.stdout, done.stderr[-2000:])
