"""What can go wrong, as the domain says it: each error has a problem ``type`` and a ``title``.

No error here knows HTTP: the API maps each class to a status in one table
(:mod:`memoturn.server.api.problems`), and the SDK's :class:`memoturn.client.ProblemError` describes an
HTTP answer. This module imports nothing, so the SDK can install with ``httpx`` alone.
"""

from __future__ import annotations


class MemoturnError(Exception):
    """Base of every Memoturn error: ``detail`` says what happened, ``extra`` adds members."""

    type = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, *, type: str | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        if type is not None:
            self.type = type
        self.extra = extra


class BadRequest(MemoturnError):
    type, title = "bad-request", "Bad request"


class Unauthorized(MemoturnError):
    type, title = "unauthorized", "Unauthorized"


class Forbidden(MemoturnError):
    type, title = "forbidden", "Forbidden"


class NotFound(MemoturnError):
    type, title = "not-found", "Not found"


class Conflict(MemoturnError):
    type, title = "conflict", "Conflict"


class PreconditionFailed(MemoturnError):
    type, title = "precondition-failed", "Precondition failed"


class PayloadTooLarge(MemoturnError):
    type, title = "payload-too-large", "Payload too large"


class NotOwner(MemoturnError):
    """This node does not (or no longer) own the branch: the gateway re-resolves and retries."""

    type, title = "not-owner", "Not the owner"


class Unavailable(MemoturnError):
    """A dependency (object store, lease service) is down; retry later."""

    type, title = "unavailable", "Service unavailable"


class DataCorrupt(MemoturnError):
    """Stored data failed verification; nothing was applied."""

    type, title = "data-corrupt", "Stored data is corrupt"
