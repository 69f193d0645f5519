"""The strict JSON reader (:mod:`memoturn.server.api.strict`) reads with orjson where orjson reads
exactly as Python's parser does, and leaves everything else to Python's: so every value and every
error is what it was with Python's parser alone. Checked against that reader (orjson switched off)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memoturn.server.api import strict


def _outcome(body: bytes) -> tuple[str, str]:
    """What ``strict.loads`` gives: the value as JSON text (so 1 and 1.0 differ), or the error."""
    try:
        return "value", json.dumps(strict.loads(body))
    except json.JSONDecodeError as exc:
        return "error", str(exc)


def _python_only(body: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    def refuse(_: Any) -> Any:
        raise orjson.JSONDecodeError("switched off", "", 0)

    with monkeypatch.context() as m:
        m.setattr(strict.orjson, "loads", refuse)
        return _outcome(body)


BODIES = [
    b'{"value": 1}',
    b"123456789012345678",  # 18 digits: orjson's int
    b"1234567890123456789",
    b"18446744073709551615",  # 2**64 - 1
    b"18446744073709551616",  # 2**64: orjson would read a float
    b"-9223372036854775809",
    b'{"n": 123456789012345678901234567890}',
    b"[0.0000000000000000001234, 1234567890123456789012.5, 12345678901234567890e2]",
    b'{"s": "call 12345678901234567890 now"}',
    b"1e999",
    b"[1E400]",
    b'{"v": NaN}',
    b"Infinity",
    b'"\\ud800"',
    b'"\xed\xa0\x80"',
    b"\xef\xbb\xbf{}",
    '{"a": 1}'.encode("utf-16"),
    b"[" * 101 + b"]" * 101,
    b"[" * 2000 + b"]" * 2000,
    b'{"a": 1, "a": 2}',
    b"-0",
    b"[1,]",
    b"",
    b'  {"x": [true, false, null, -0.0, 1e-400]}  ',
    b'{"a": "\x01"}',
    b"\xff",
    b"1e-0000000000000000000005",
    b"[1.5E+0000000000000000000002, 12345678901234567890.5]",
    b"-12345678901234567890",
    b"[-12345678901234567890, 7]",
    b'{"k":12345678901234567890}',
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_same_value_or_error_as_pythons_parser(body, monkeypatch):
    assert _outcome(body) == _python_only(body, monkeypatch)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_json)
def test_any_json_value_reads_as_pythons_parser_reads_it(value):
    body = json.dumps(value).encode()
    fast = _outcome(body)
    with pytest.MonkeyPatch.context() as m:
        assert fast == _python_only(body, m)
