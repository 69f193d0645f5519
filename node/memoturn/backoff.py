"""Exponential backoff, one mechanism for every retry loop (SDK, gateway, shipper).

Each caller keeps its own cap, because each waits on something different (an SDK user, a
proxied request, a store outage); the doubling and the cap live here. No jitter: retries are
bounded in count by the callers and spread by their own request timing.
"""

from __future__ import annotations

from collections.abc import Iterator


def next_delay(previous: float | None, *, first: float, cap: float) -> float:
    """The delay after ``previous`` (``None`` before the first retry): doubling, at most ``cap``."""
    return min(cap, first if previous is None else previous * 2)


def delays(*, first: float, cap: float, retries: int) -> Iterator[float]:
    """``retries`` delays: ``first``, doubling, each at most ``cap``."""
    delay: float | None = None
    for _ in range(retries):
        delay = next_delay(delay, first=first, cap=cap)
        yield delay
