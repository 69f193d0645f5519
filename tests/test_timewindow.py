"""Time windows in words, against a fixed ``now``: calendar periods, rolling windows, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from memoturn.timewindow import parse_window, resolve_window, seconds

OSLO = timezone(timedelta(hours=2))
# Wednesday 12 June 2024, 15:30 at UTC+2
NOW = datetime(2024, 6, 12, 15, 30, tzinfo=OSLO)


def at(*args: int) -> float:
    return datetime(*args, tzinfo=OSLO).timestamp()


def span(text: str) -> tuple[float, float]:
    w = parse_window(text, NOW)
    return w.since, w.until


TICK = 1e-6


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("today", (2024, 6, 12), (2024, 6, 13)),
        ("  Yesterday ", (2024, 6, 11), (2024, 6, 12)),
        ("this week", (2024, 6, 10), (2024, 6, 17)),
        ("last week", (2024, 6, 3), (2024, 6, 10)),
        ("previous week", (2024, 6, 3), (2024, 6, 10)),
        ("this month", (2024, 6, 1), (2024, 7, 1)),
        ("last month", (2024, 5, 1), (2024, 6, 1)),
        ("this year", (2024, 1, 1), (2025, 1, 1)),
        ("last year", (2023, 1, 1), (2024, 1, 1)),
        ("2024-02-29", (2024, 2, 29), (2024, 3, 1)),
        ("2023-12", (2023, 12, 1), (2024, 1, 1)),
    ],
)
def test_calendar_periods_are_whole_and_inclusive(text, start, end):
    since, until = span(text)
    assert since == at(*start)
    assert until == pytest.approx(at(*end) - TICK, abs=1e-6) and until < at(*end)


def test_last_month_in_january_is_december():
    w = parse_window("last month", datetime(2024, 1, 20, tzinfo=UTC))
    assert w.since == datetime(2023, 12, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("past week", NOW - timedelta(days=7)),
        ("last 7 days", NOW - timedelta(days=7)),
        ("past 3 days", NOW - timedelta(days=3)),
        ("last 1 day", NOW - timedelta(days=1)),
        ("past hour", NOW - timedelta(hours=1)),
        ("last 90 minutes", NOW - timedelta(minutes=90)),
        ("past 2 weeks", NOW - timedelta(weeks=2)),
        ("past month", datetime(2024, 5, 12, 15, 30, tzinfo=OSLO)),
        ("last 4 months", datetime(2024, 2, 12, 15, 30, tzinfo=OSLO)),
        ("past year", datetime(2023, 6, 12, 15, 30, tzinfo=OSLO)),
    ],
)
def test_rolling_windows_end_now(text, start):
    assert span(text) == (start.timestamp(), NOW.timestamp())


def test_a_month_back_from_the_31st_is_clamped():
    now = datetime(2024, 3, 31, 12, tzinfo=UTC)
    assert parse_window("past month", now).since == datetime(2024, 2, 29, 12, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "text",
    ["", "last tuesday", "next week", "last 0 days", "past -3 days", "2024-13", "2024-02-30", "past 999999 years"],
)
def test_unknown_or_impossible_windows_are_refused(text):
    with pytest.raises(ValueError):
        parse_window(text, NOW)


def test_now_must_be_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_window("today", datetime(2024, 6, 12))


def test_resolve_window_takes_words_or_times_not_both():
    assert resolve_window("today", None, None, NOW)[0] == at(2024, 6, 12)
    assert resolve_window(None, 10, "1970-01-01T00:00:20Z", NOW) == (10.0, 20.0)
    assert resolve_window(None, None, None, NOW) == (None, None)
    with pytest.raises(ValueError, match="not both"):
        resolve_window("today", 1, None, NOW)
    with pytest.raises(ValueError, match="after until"):
        resolve_window(None, 20, 10, NOW)
    for bad in ("soon", "nan", "inf"):
        with pytest.raises(ValueError):
            seconds(bad, "since")
