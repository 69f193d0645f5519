"""Benchmarks against peer systems, run on the same machine, in the same run, against the same
object store. Peer programs are built from source at run time (``.ci/install-*``), never vendored.

    python -m bench.peers.litestream [--quick]    # replication lag and restore vs Litestream
"""
