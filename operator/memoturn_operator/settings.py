"""The operator's own settings, from the environment (``MEMOTURN_OPERATOR_*``).

:func:`load` reads the environment each time it is called, so each setting is read where it
is used: the timer intervals when kopf registers the handlers, the metrics address at
startup, the scaling cooldown at every scaling decision.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    # Exact, case-sensitive names (as os.environ.get read them); other variables are not ours.
    model_config = SettingsConfigDict(case_sensitive=True, populate_by_name=True, extra="ignore")

    resync_seconds: float = Field(10.0, validation_alias="MEMOTURN_OPERATOR_RESYNC_SECONDS")
    """How often each tenant is reconciled and scaled."""
    branch_check_seconds: float = Field(5.0, validation_alias="MEMOTURN_OPERATOR_BRANCH_CHECK_SECONDS")
    """How often burner branches are checked for expiry."""
    scale_cooldown_seconds: float = Field(60.0, validation_alias="MEMOTURN_OPERATOR_SCALE_COOLDOWN_SECONDS")
    """Least time between two scaling steps of one tenant."""
    reapply_seconds: float = Field(300.0, gt=0, validation_alias="MEMOTURN_OPERATOR_REAPPLY_SECONDS")
    """Longest time an idle tenant's objects go without being re-applied (watch events repair
    drift at once; this is the safety net for an event the operator missed)."""
    operator_namespace: str | None = Field(None, validation_alias="MEMOTURN_OPERATOR_NAMESPACE")
    """The operator's own namespace (the chart sets it): tenants' NetworkPolicies let in the
    operator's pods from there only; unset: from any namespace."""
    metrics_listen: str | None = Field(None, validation_alias="MEMOTURN_OPERATOR_METRICS_LISTEN")
    """``HOST:PORT`` for Prometheus metrics; unset or empty: none."""


def load() -> OperatorSettings:
    """The settings as the environment has them now; ValueError (one line) for a bad value."""
    try:
        return OperatorSettings()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{name}: {first['msg']}, got {first.get('input')!r}") from None
