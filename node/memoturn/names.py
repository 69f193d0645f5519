"""Validation of database, branch and key names, and the object-key layout they map to.

Names become object-store path components, so they are restricted to a safe alphabet.
A profile database is ``{namespace}--{profile}``. Layout under the store::

    db/{database}/{branch}/manifest.json
    db/{database}/{branch}/seg/{first:020d}-{last:020d}.e{epoch}.t{timeline}.seg
    db/{database}/{branch}/snap/{txid:020d}.e{epoch}.t{timeline}.snap

(``timeline`` counts the branch's rewinds, so txids reused after a rewind get new keys).
"""

from __future__ import annotations

import re
import secrets

from .errors import BadRequest

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,126}[a-z0-9])?$")
DEFAULT_BRANCH = "main"


def check_database_name(name: str) -> str:
    """Return ``name`` if it is a valid database name, else raise :class:`BadRequest`."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise BadRequest(
            f"invalid database name {name!r}: use 1-128 characters of a-z, 0-9, '.', '_', '-', "
            "starting and ending with a letter or digit",
            type="invalid-name",
        )
    return name


def check_branch_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise BadRequest(f"invalid branch name {name!r}", type="invalid-name")
    return name


def branch_prefix(database: str, branch: str) -> str:
    return f"db/{database}/{branch}/"


def manifest_key(database: str, branch: str) -> str:
    return f"db/{database}/{branch}/manifest.json"


def segment_key(database: str, branch: str, first: int, last: int, epoch: int, timeline: int = 0) -> str:
    return f"db/{database}/{branch}/seg/{first:020d}-{last:020d}.e{epoch}.t{timeline}.{_nonce()}.seg"


def snapshot_key(database: str, branch: str, txid: int, epoch: int, timeline: int = 0) -> str:
    return f"db/{database}/{branch}/snap/{txid:020d}.e{epoch}.t{timeline}.{_nonce()}.snap"


def _nonce() -> str:
    # Every upload attempt gets a key of its own: an object is never referenced for the first
    # time after it has sat unreferenced (which is what the GC's grace window relies on).
    return secrets.token_hex(4)
