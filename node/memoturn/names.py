"""Validation of database, branch and key names, and the object-key layout they map to.

Names become object-store path components, so they are restricted to a safe alphabet.

A profile database is ``{namespace}--{profile}``, and that name must say whose it is (a
namespace token reaches exactly the databases whose namespace part is its own). So a
namespace and a profile are each a *part*: 1-63 characters of a-z, 0-9, '.', '_', '-',
starting and ending with a letter or digit, with no ``--`` (and no ``..``). A part never
contains ``--`` and never starts or ends with ``-``, so a profile database name contains
``--`` exactly once and splits there one way only: :func:`profile_database` and
:func:`split_profile_database` are inverse bijections between valid pairs and profile
database names. Every other database name is not a profile database (admin only). Build and
parse these names only with the two functions. Every object key is built here; the layout
under the store::

    db/{database}/{branch}/manifest.json
    db/{database}/{branch}/seg/{first:020d}-{last:020d}.e{epoch}.t{timeline}.{nonce}.seg
    db/{database}/{branch}/snap/{txid:020d}.e{epoch}.t{timeline}.{nonce}.snap
    gc/{database}.json                        objects seen unreferenced, and since when
    auth/tokens/{sha256 of the token}.json    namespace tokens

(``timeline`` counts the branch's rewinds, so txids reused after a rewind get new keys;
``nonce`` makes every upload attempt a key of its own.)
"""

from __future__ import annotations

import re
import secrets
from typing import TypeGuard

from .errors import BadRequest

# fullmatch, not ``$``: ``$`` also matches before a trailing newline, so "a\n" would pass.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,126}[a-z0-9])?")
_PART = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?")
SEPARATOR = "--"
DEFAULT_BRANCH = "main"


def is_part(value: object) -> TypeGuard[str]:
    """A valid namespace or profile: no ``--``, no leading or trailing ``-``, so it can never
    supply or absorb a piece of the separator."""
    return isinstance(value, str) and bool(_PART.fullmatch(value)) and SEPARATOR not in value and ".." not in value


def _check_part(what: str, value: object) -> str:
    if not is_part(value):
        raise BadRequest(
            f"invalid {what} {value!r}: 1-63 characters of a-z, 0-9, '.', '_', '-', starting and ending "
            "with a letter or digit, without '--' or '..'",
            type="invalid-name",
        )
    return value


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is valid, else raise :class:`BadRequest` (``invalid-name``)."""
    return _check_part("namespace", namespace)


def check_profile(profile: object) -> str:
    """Return ``profile`` if it is valid, else raise :class:`BadRequest` (``invalid-name``)."""
    return _check_part("profile", profile)


def profile_database(namespace: str, profile: str) -> str:
    """The database of one profile, ``{namespace}--{profile}``; 400 for an invalid part."""
    return f"{check_namespace(namespace)}{SEPARATOR}{check_profile(profile)}"


def split_profile_database(name: str) -> tuple[str, str] | None:
    """``(namespace, profile)`` of a profile database, or None for any other database name.

    Splits at the first ``--`` and accepts the split only if both sides are valid parts, so
    ``acme---x`` (``acme-`` + ``x``, or ``acme`` + ``-x``) belongs to no namespace."""
    if not isinstance(name, str):
        return None
    namespace, sep, profile = name.partition(SEPARATOR)
    if not sep or not is_part(namespace) or not is_part(profile):
        return None
    return namespace, profile


def check_database_name(name: str) -> str:
    """Return ``name`` if it is a valid database name, else raise :class:`BadRequest`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise BadRequest(
            f"invalid database name {name!r}: use 1-128 characters of a-z, 0-9, '.', '_', '-', "
            "starting and ending with a letter or digit",
            type="invalid-name",
        )
    return name


def check_branch_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise BadRequest(f"invalid branch name {name!r}", type="invalid-name")
    return name


DATABASES_PREFIX = "db/"
TOKENS_PREFIX = "auth/tokens/"


def database_prefix(database: str) -> str:
    """Every object of a database, all branches."""
    return f"{DATABASES_PREFIX}{database}/"


def database_of_prefix(prefix: str) -> str:
    """The database named by a ``db/{database}/`` listing prefix."""
    return prefix[len(DATABASES_PREFIX) :].rstrip("/")


def branch_prefix(database: str, branch: str) -> str:
    return f"{database_prefix(database)}{branch}/"


def branch_of_prefix(database: str, prefix: str) -> str:
    """The branch named by a ``db/{database}/{branch}/`` listing prefix."""
    return prefix[len(database_prefix(database)) :].rstrip("/")


def is_manifest_key(key: str) -> bool:
    return key.endswith("/manifest.json")


def gc_state_key(database: str) -> str:
    return f"gc/{database}.json"


def token_key(token_sha256: str) -> str:
    return f"{TOKENS_PREFIX}{token_sha256}.json"


def manifest_key(database: str, branch: str) -> str:
    return f"{branch_prefix(database, branch)}manifest.json"


def segment_key(database: str, branch: str, first: int, last: int, epoch: int, timeline: int = 0) -> str:
    return f"{branch_prefix(database, branch)}seg/{first:020d}-{last:020d}.e{epoch}.t{timeline}.{_nonce()}.seg"


def snapshot_key(database: str, branch: str, txid: int, epoch: int, timeline: int = 0) -> str:
    return f"{branch_prefix(database, branch)}snap/{txid:020d}.e{epoch}.t{timeline}.{_nonce()}.snap"


def _nonce() -> str:
    # Every upload attempt gets a key of its own: an object is never referenced for the first
    # time after it has sat unreferenced (which is what the GC's grace window relies on).
    return secrets.token_hex(4)
