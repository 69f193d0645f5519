"""Time windows in words ("last week", "yesterday", "past 3 days") as unix-second ranges.

Agents say when in words; recall and list filter on ``since``/``until`` in unix seconds. This
turns one into the other against a given ``now`` (an aware datetime, whose zone sets where days
and weeks begin), so it is pure and testable. Two kinds of window:

* **calendar periods**, whole and inclusive: ``today``, ``yesterday``, ``this week|month|year``,
  ``last week|month|year`` (the previous calendar one; weeks begin on Monday), and an ISO date
  ``2024-06-10`` or month ``2024-06``;
* **rolling windows**, ending now: ``past|last N minutes|hours|days|weeks|months|years`` and
  ``past hour|day|week|month|year`` (N = 1). So "last week" is the previous Monday to Sunday,
  "past week" and "last 7 days" the 7 days up to now.

Imports nothing of Memoturn: the CLI and the MCP server use it without the server's packages.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

#: What :func:`parse_window` accepts, as an agent or a user should read it.
FORMS = (
    "'today', 'yesterday', 'this week', 'this month', 'this year', 'last week', 'last month', 'last year' "
    "(calendar periods; weeks begin on Monday), 'past N minutes|hours|days|weeks|months|years' or "
    "'last N days' etc. (rolling, up to now; 'past week' = the last 7 days), or a date '2024-06-10' or month '2024-06'"
)
_UNITS = {"minute": "minutes", "hour": "hours", "day": "days", "week": "weeks", "month": "months", "year": "years"}
_ROLLING = re.compile(r"(?:past|last)\s+(?:(\d{1,6})\s+)?(minute|hour|day|week|month|year)s?")
_CALENDAR = re.compile(r"(this|last|previous)\s+(week|month|year)")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
# The end of a whole period is inclusive (filters compare with <=): one microsecond before the next one.
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    """``since`` to ``until``, both inclusive, in unix seconds."""

    since: float
    until: float


def _midnight(day: date, tz: tzinfo | None) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the month's last day (31 March - 1 month = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    first_of_next = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    return date(year, month + 1, min(day.day, (first_of_next - timedelta(days=1)).day))


def _period(start: datetime, end: datetime) -> Window:
    return Window(start.timestamp(), (end - _TICK).timestamp())


def parse_window(text: str, now: datetime) -> Window:
    """The window ``text`` names, relative to ``now`` (timezone-aware); ValueError naming the accepted forms."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    words = " ".join(text.lower().split())
    tz = now.tzinfo
    today = now.date()
    if words == "today":
        return _period(_midnight(today, tz), _midnight(today + timedelta(days=1), tz))
    if words == "yesterday":
        return _period(_midnight(today - timedelta(days=1), tz), _midnight(today, tz))
    if m := _CALENDAR.fullmatch(words):
        back = 0 if m.group(1) == "this" else 1
        unit = m.group(2)
        if unit == "week":
            monday = today - timedelta(days=today.weekday() + 7 * back)
            start, end = monday, monday + timedelta(days=7)
        elif unit == "month":
            start = _add_months(today.replace(day=1), -back)
            end = _add_months(start, 1)
        else:
            start = date(today.year - back, 1, 1)
            end = date(start.year + 1, 1, 1)
        return _period(_midnight(start, tz), _midnight(end, tz))
    if m := _ROLLING.fullmatch(words):
        count = int(m.group(1) or 1)
        if count < 1:
            raise ValueError(f"time window {text!r}: the count must be at least 1")
        unit = _UNITS[m.group(2)]
        if unit in ("months", "years"):
            months = count * (12 if unit == "years" else 1)
            try:
                moved = _add_months(now.date(), -months)
            except ValueError:
                raise ValueError(f"time window {text!r} reaches before year 1") from None
            start = datetime.combine(moved, now.timetz())
        else:
            try:
                start = now - timedelta(**{unit: count})
            except OverflowError:
                raise ValueError(f"time window {text!r} reaches before year 1") from None
        return Window(start.timestamp(), now.timestamp())
    if m := _MONTH.fullmatch(words):
        try:
            first = date(int(m.group(1)), int(m.group(2)), 1)
        except ValueError:
            raise ValueError(f"time window {text!r}: no such month") from None
        return _period(_midnight(first, tz), _midnight(_add_months(first, 1), tz))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", words):
        try:
            day = date.fromisoformat(words)
        except ValueError:
            raise ValueError(f"time window {text!r}: no such date") from None
        return _period(_midnight(day, tz), _midnight(day + timedelta(days=1), tz))
    raise ValueError(f"unknown time window {text!r}: say {FORMS}")


TIME_HELP = (
    "seconds since the Unix epoch as a number, or an ISO 8601 date-time string with its UTC offset "
    "(e.g. '2024-06-10T10:00:00Z')"
)


def seconds(value: float | str, what: str) -> float:
    """A time as given (unix seconds, or an ISO 8601 date-time) in unix seconds; ValueError naming ``what``.

    A date-time without an offset is read in the local time zone, as the server reads one."""
    try:
        out = float(value)
    except ValueError:
        try:
            out = datetime.fromisoformat(str(value)).timestamp()
        except (ValueError, OverflowError):
            raise ValueError(f"{what} must be {TIME_HELP}, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{what} must be a finite time, got {value!r}")
    return out


def resolve_window(
    window: str | None, since: float | str | None, until: float | str | None, now: datetime
) -> tuple[float | None, float | None]:
    """``since``/``until`` in unix seconds, from a window in words or from the two times (not both)."""
    if window is not None:
        if since is not None or until is not None:
            raise ValueError("give a time window in words, or since/until, not both")
        w = parse_window(window, now)
        return w.since, w.until
    lo = None if since is None else seconds(since, "since")
    hi = None if until is None else seconds(until, "until")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"since ({lo}) is after until ({hi})")
    return lo, hi
