"""The storage engine: a branch's commits captured from the WAL, shipped as segments, and restored.

Formats (``wal``, ``segment``, ``snapshot``, ``manifest``), the object store (``store``),
restore, the branch log that owns replication state (``branch_log``), the shipper that
schedules it, compaction, snapshots and retention, and ``database``: one open branch.
"""
