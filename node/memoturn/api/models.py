"""Request and response bodies of the HTTP API (they generate the published OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

JSONValue = Any


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
    namespace: str


class CreateDatabase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="1-128 characters of a-z, 0-9, '.', '_', '-'; profiles are '{namespace}--{profile}'")


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
    ttl_seconds: float | None = Field(None, gt=0, description="Expire the key after this many seconds")


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
    base64: str


SQLValue = Union[None, bool, int, float, str, Blob]


class Statement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str = Field(max_length=1_000_000)
    params: list[SQLValue] | dict[str, SQLValue] = Field(default_factory=list)


class SQLRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    statements: list[Statement] = Field(min_length=1, max_length=1000)
    transaction: bool = Field(True, description="Run the batch in one transaction (all or nothing)")


class StatementResult(BaseModel):
    columns: list[str]
    rows: list[list[SQLValue]]
    rows_affected: int
    last_insert_rowid: int | None = None


class SQLResponse(BaseModel):
    results: list[StatementResult]
    txid: int
