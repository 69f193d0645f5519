"""Errors that reach a client, each with its HTTP status and a problem ``type``.

The API turns any :class:`MemoturnError` into an RFC 9457 problem body
(``application/problem+json``); the CLI prints its ``detail`` on one line.
"""

from __future__ import annotations


class MemoturnError(Exception):
    status = 500
    type = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, *, type: str | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        if type is not None:
            self.type = type
        self.extra = extra


class BadRequest(MemoturnError):
    status, type, title = 400, "bad-request", "Bad request"


class Unauthorized(MemoturnError):
    status, type, title = 401, "unauthorized", "Unauthorized"


class Forbidden(MemoturnError):
    status, type, title = 403, "forbidden", "Forbidden"


class NotFound(MemoturnError):
    status, type, title = 404, "not-found", "Not found"


class Conflict(MemoturnError):
    status, type, title = 409, "conflict", "Conflict"


class PreconditionFailed(MemoturnError):
    status, type, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(MemoturnError):
    status, type, title = 413, "payload-too-large", "Payload too large"


class NotOwner(MemoturnError):
    """This node does not (or no longer) own the branch: the gateway re-resolves and retries."""

    status, type, title = 409, "not-owner", "Not the owner"


class Unavailable(MemoturnError):
    """A dependency (object store, lease service) is down; retry later."""

    status, type, title = 503, "unavailable", "Service unavailable"


class DataCorrupt(MemoturnError):
    """Stored data failed verification; nothing was applied."""

    status, type, title = 502, "data-corrupt", "Stored data is corrupt"
