"""Kubernetes resource quantities (``500m``, ``1``, ``2Gi``, ``1e3``): checked and compared.

A ``MemoryTenant`` takes resources the way a pod does, as an integer or a string; a value the
API server would refuse in the Deployment is refused here first, with the field's name.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

#: The API server's quantity grammar: a signed decimal and an optional binary (Ki..Ei), decimal
#: (n, u, m, k, M..E) or exponent suffix. Resources are never negative, so no sign here.
PATTERN = r"^(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$"
_QUANTITY = re.compile(PATTERN)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)}
_DECIMAL |= {s: Decimal(10) ** (3 * (i + 1)) for i, s in enumerate("kMGTPE")}


def normalize(value: object) -> str:
    """The quantity as the string a pod spec carries; ValueError saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 1, 2Gi)")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if not _QUANTITY.match(text):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 1, 2Gi)")
    return text


def parse(text: str) -> Decimal:
    """The quantity's value in base units (cores, bytes): ``500m`` -> 0.5, ``1Gi`` -> 1073741824."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, suffix = match.group(1), match.group(3) or ""
    try:
        if suffix in _BINARY:
            return Decimal(number) * _BINARY[suffix]
        if suffix in _DECIMAL:
            return Decimal(number) * _DECIMAL[suffix]
        return Decimal(number + suffix)  # an exponent: 1e3
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from exc
