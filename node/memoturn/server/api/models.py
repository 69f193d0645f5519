"""Request and response bodies of the HTTP API (they generate the published OpenAPI document)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, AllowInfNan, BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic_core import PydanticCustomError

JSONValue = Any

# Request fields take JSON's own types: no "10" for 10, no true for 1 (lax pydantic took both,
# so a typo became a value), and numbers are finite.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]
Bool = Annotated[bool, Strict()]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError(
            "invalid_string", "contains NUL (U+0000), which SQLite cannot store: it cuts the string there"
        )
    return value


def _no_nul_within(value: Any) -> Any:
    """Every string (and object key) of a JSON value whose scalars are bound as SQL parameters."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


_NUMBER = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")


def _iso_only(value: Any) -> Any:
    if not isinstance(value, str) or _NUMBER.fullmatch(value):
        raise PydanticCustomError("timestamp_type", "a timestamp is unix seconds (a number) or an ISO 8601 string")
    return value


def _unix(value: datetime) -> float:
    try:
        return value.timestamp()
    except (ValueError, OverflowError):  # a naive 0001-01-01 is before year 1 in UTC (it was a 500)
        raise PydanticCustomError("timestamp_range", "the time is out of range") from None


# A string that reaches SQLite as text. (A JSON value is stored encoded, NUL as "\u0000": fine.)
Text = Annotated[str, AfterValidator(_no_nul)]
# A filter: its values are bound as SQL parameters.
Filter = Annotated[dict[str, Any], AfterValidator(_no_nul_within)]
# Unix seconds or an ISO 8601 string (not a number in a string); unix seconds once validated.
Timestamp = Union[Float, Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_unix)]]  # noqa: UP007 - pydantic reads this alias at run time; Union keeps Annotated members as they are


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    type: str = Field(description="Stable machine-readable error kind, e.g. 'not-found'")
    title: str
    status: int
    detail: str
    txid: int | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str = "ok"
    node_id: str


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = Field(
        description="1-63 characters of a-z, 0-9, '.', '_', '-', starting and ending with a "
        "letter or digit, without '--' or '..'"
    )
    ttl_seconds: Int | None = Field(None, gt=0, description="The token expires this many seconds after minting")
    expires_at: Float | None = Field(
        None, description="The token expires at this time (unix seconds); not with ttl_seconds"
    )


class MintedToken(BaseModel):
    token: str = Field(description="The bearer token: shown once, never stored")
    token_sha256: str = Field(description="The token's SHA-256 (hex), which names it for revocation")
    namespace: str
    expires_at: float | None = Field(description="Unix seconds; null for no expiry")


class ClusterNode(BaseModel):
    """A live node as it registered itself (etcd lease info: also capacity and since, when clustered)."""

    model_config = ConfigDict(extra="allow")
    id: str
    url: str


class OpenBranch(BaseModel):
    key: str = Field(description="'{db}/{branch}'")
    tier: Literal["hot", "warm", "cold"]
    owner: str = Field(description="The node id owning the branch")
    head_txid: int
    shipped_txid: int = Field(description="The last txid in object storage")
    unshipped_txids: int


class ReplicaState(BaseModel):
    """A node's replica copy of a branch."""

    head_txid: int
    epoch: int
    stale: bool = Field(description="Must be restored from object storage before it is read")
    checked_seconds_ago: float = Field(description="Since it was last known current")


class ReplicaCopy(BaseModel):
    key: str = Field(description="'{db}/{branch}'")
    owner: str
    head_txid: int
    epoch: int
    stale: bool
    checked_seconds_ago: float


class ReplicaApplied(BaseModel):
    applied: bool = Field(description="The segment continued the copy's chain and was applied")
    head_txid: int = Field(description="The replica copy's head now")
    reason: Literal["old", "restored", "applied"] = Field(
        description="'old': already had it; 'restored': a gap, so the copy was restored from object storage"
    )


class ClusterStatus(BaseModel):
    node_id: str = Field(description="The node answering")
    ready: bool
    detail: str
    clustered: bool = Field(description="Whether the node is part of an etcd cluster")
    nodes: list[ClusterNode]
    owners: dict[str, str] = Field(description="'{db}/{branch}' to owning node id")
    branches: list[OpenBranch] = Field(description="The branches this node holds open")
    replicas: list[ReplicaCopy] = Field(description="This node's replica copies of other nodes' branches")
    replica_lag_txids: int | None
    unshipped_txids: int = Field(description="Committed txids not yet in object storage, over all branches")


class CreateDatabase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(description="1-128 characters of a-z, 0-9, '.', '_', '-'; profiles are '{namespace}--{profile}'")


class DatabaseInfo(BaseModel):
    name: str
    branch: str
    tier: Literal["hot", "warm", "cold"]
    head_txid: int
    shipped_txid: int
    epoch: int
    generation: int
    snapshots: int
    segments: int
    created_at: float
    updated_at: float


class DatabaseList(BaseModel):
    databases: list[str]
    next_cursor: str | None = None


class KVPut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: JSONValue = Field(description="Any JSON value")
    ttl_seconds: Float | None = Field(None, gt=0, description="Expire the key after this many seconds")


class KVItem(BaseModel):
    key: str
    value: JSONValue = None
    expires_at: float | None = None
    updated_at: float


class KVWritten(BaseModel):
    key: str
    txid: int


class KVDeleted(BaseModel):
    key: str
    deleted: bool
    txid: int


class KVList(BaseModel):
    items: list[KVItem]
    next_cursor: str | None = None


class Blob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base64: str = Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$", description="The bytes in standard base64")


SQLValue = Union[None, bool, int, float, str, Blob]  # noqa: UP007 - a run-time alias, written as pydantic documents it


def _int64(value: Any) -> Any:
    if type(value) is int and not -(2**63) <= value < 2**63:
        raise PydanticCustomError("int_range", "SQLite integers are 64-bit; this one would become a float")
    return value


SQLParam = Annotated[None | Bool | Int | Float | Text | Blob, BeforeValidator(_int64)]


class Statement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: Text = Field(max_length=1_000_000)
    params: list[SQLParam] | dict[Text, SQLParam] = Field(default_factory=list)


class SQLRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    statements: list[Statement] = Field(min_length=1, max_length=1000)
    transaction: Bool = Field(True, description="Run the batch in one transaction (all or nothing)")


class StatementResult(BaseModel):
    columns: list[str]
    rows: list[list[SQLValue]]
    rows_affected: int
    last_insert_rowid: int | None = None


class SQLResponse(BaseModel):
    results: list[StatementResult]
    txid: int
