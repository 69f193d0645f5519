"""The wall clock that expiries are judged by (KV TTLs, burner branches, GC ages).

One function in one place, so a test moves time forward instead of sleeping past a
sub-second TTL and racing a slow machine. Durations and deadlines use ``time.monotonic``
directly; only wall-clock instants that are stored or compared with stored ones come here.
"""

from __future__ import annotations

import time


def now() -> float:
    """Seconds since the epoch, as stored in ``expires_at`` and ``updated_at`` columns."""
    return time.time()
