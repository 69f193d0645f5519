"""One strict reading of every request, for every route: the app's ``route_class``.

* **JSON bodies.** Python's parser takes ``NaN``, ``Infinity`` and ``-Infinity``, numbers too
  large for a double (``1e999`` is inf) and lone surrogates (``"\\ud800"``). None of them is a
  value a database can keep: they came back as ``null``, or made a 500. Each one is a
  400 ``malformed-json``. Only bodies that could hold one take the slow path (a regex says so).
  So is nesting deeper than :data:`MAX_DEPTH` levels: such a value was stored, and then every
  read of it was a 500 (the response serializer stops at 255 levels).
  Bodies are read with orjson where it reads exactly as Python's parser does (ten times faster on
  a memory's vector of numbers), and with Python's parser otherwise, so values and errors are
  Python's (``tests/test_strict_json.py``).
* **Path and query parameters.** SQLite cuts a string at NUL (``kv/a%00b`` read ``a``), so a NUL
  is a 400 ``invalid-string``. :mod:`.models` checks the strings in request bodies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from ...errors import BadRequest

MAX_DEPTH = 100  # levels of arrays and objects in a request body (MongoDB's limit too)
# What may hide a number beyond a double (an exponent of 3+ digits, or 200+ digits in a row, the
# least that can reach 1.8e308 with a 2-digit exponent) or a surrogate. Found by byte scans on
# the body's "shape" (digits as 0, e/E as e): a regex over every byte cost as much as the parse.
_SHAPE = bytes(
    48 if 48 <= i <= 57 else 101 if i in (69, 101) else i if i in (43, 45, 46) else 32 for i in range(256)
)  # digits as 0, e/E as e, + - . as themselves, anything else as a space
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


# An integer literal of 19+ digits, in the shape: after a space (what any byte but a digit, e, +, -
# or . becomes) or after " -". orjson reads one beyond 64 bits as a float, Python's parser as the
# exact integer. A fraction's or an exponent's digits follow "." or "e"; digits in a string may
# match too, which only costs the slower parser.
_LONG_INTEGER = b" " + b"0" * 19
_LONG_NEGATIVE = b" -" + b"0" * 19


def _parse(body: bytes, shape: bytes) -> Any:
    """orjson's reading where it is the same as Python's (ten times faster on a vector of numbers);
    Python's parser for anything orjson refuses or could read otherwise, so every answer and every
    error is the standard library's."""
    start = b" " + shape[:21]
    if not (_LONG_INTEGER in shape or _LONG_NEGATIVE in shape or _LONG_INTEGER in start or _LONG_NEGATIVE in start):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # NaN, 1e999, a lone surrogate, invalid UTF-8, too deep...: Python says what it is
    return json.loads(body, parse_constant=_constant)


def _suspect(body: bytes, shape: bytes) -> bool:
    return (
        b"e000" in shape
        or b"e+000" in shape
        or b"0" * 200 in shape
        or ((b"\\u" in body or b"\xed" in body) and _SURROGATE.search(body) is not None)
    )


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is beyond the range of a JSON number (a double)")
    return value


def _depth_ok(value: Any) -> bool:
    level = [value]
    for _ in range(MAX_DEPTH):
        deeper: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            kinds = set(map(type, items))  # C speed: a long list of numbers costs little
            if dict in kinds or list in kinds:
                deeper.extend(x for x in items if type(x) is dict or type(x) is list)
        if not deeper:
            return True
        level = deeper
    return False


def loads(body: bytes) -> Any:
    """Strict JSON; anything refused raises :class:`json.JSONDecodeError` (FastAPI's 400)."""
    try:
        shape = body.translate(_SHAPE)
        value = _parse(body, shape)
        if _suspect(body, shape):
            value = json.loads(body, parse_constant=_constant, parse_float=_finite)
            json.dumps(value, ensure_ascii=False).encode()  # a lone surrogate cannot be UTF-8
        if body.count(b"[") + body.count(b"{") > MAX_DEPTH and type(value) in (dict, list) and not _depth_ok(value):
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        return value
    except json.JSONDecodeError:
        raise
    except UnicodeEncodeError:
        raise json.JSONDecodeError("a string holds a lone surrogate (not Unicode text)", "", 0) from None
    except (ValueError, RecursionError) as exc:  # the hooks above, invalid UTF-8, too deep, 4300+ digits
        raise json.JSONDecodeError(
            str(exc) if not isinstance(exc, RecursionError) else "nested too deeply", "", 0
        ) from None


class StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


def _check_params(request: Request) -> None:
    for where, items in (("path", request.path_params.items()), ("query", request.query_params.multi_items())):
        for name, value in items:
            if "\x00" in name or "\x00" in str(value):
                raise BadRequest(
                    f"{where} parameter {name!r} contains NUL (U+0000), which SQLite cannot store",
                    type="invalid-string",
                )


class StrictRoute(APIRoute):
    """Every route reads its request through :class:`StrictRequest` and checks its parameters."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            _check_params(request)
            return await handler(StrictRequest(request.scope, request.receive))

        return strict
