"""Dashboard settings from the environment (validated, so a typo fails loudly at start).

Session limits (docs/security.md, "Sessions and passwords"): a person's session ends after
$WARD_DASH_IDLE_TIMEOUT_S without activity (default 15 min) and at the latest
$WARD_DASH_SESSION_MAX_AGE_S after login (12 h); a read-only wall-display session has no idle limit
and ends $WARD_DASH_KIOSK_MAX_AGE_S after login (24 h).
"""

from __future__ import annotations

import os
from typing import Mapping

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ward.store.engine import DEFAULT_URL
from ward.store.sessions import SessionLimits

ENV = {
    "db_url": "WARD_DB_URL",
    "api_url": "WARD_API_URL",
    "api_token": "WARD_API_TOKEN",
    "refresh_s": "WARD_DASH_REFRESH_S",
    "stale_after_s": "WARD_DASH_STALE_AFTER_S",
    "escalate_after_s": "WARD_ESCALATE_AFTER_S",
    "spark_window_s": "WARD_DASH_SPARK_WINDOW_S",
    "idle_timeout_s": "WARD_DASH_IDLE_TIMEOUT_S",
    "session_max_age_s": "WARD_DASH_SESSION_MAX_AGE_S",
    "kiosk_max_age_s": "WARD_DASH_KIOSK_MAX_AGE_S",
}
_DAY_S = 86_400.0


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    db_url: str = DEFAULT_URL
    api_url: str | None = None          # optional live state from the serving API
    api_token: str | None = Field(None, repr=False)  # bearer token for it (set by the ward when it starts us)

    def api_headers(self) -> dict[str, str]:
        """Authorization header for the ward API (the API refuses anonymous requests)."""
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}
    refresh_s: float = Field(1.5, ge=0.5, le=60)
    stale_after_s: float = Field(10.0, gt=0)
    escalate_after_s: float = Field(120.0, gt=0)
    spark_window_s: float = Field(120.0, gt=0, le=3600)
    idle_timeout_s: float = Field(900.0, ge=60, le=_DAY_S)            # a person's session, without activity
    session_max_age_s: float = Field(12 * 3600.0, ge=300, le=7 * _DAY_S)  # a person's session, from login
    kiosk_max_age_s: float = Field(_DAY_S, ge=300, le=7 * _DAY_S)    # a wall display's, from login

    @model_validator(mode="after")
    def _idle_within_max_age(self) -> "DashboardSettings":
        if self.idle_timeout_s > self.session_max_age_s:
            raise ValueError(f"idle_timeout_s ({self.idle_timeout_s:g}) is longer than session_max_age_s "
                             f"({self.session_max_age_s:g}): lower the idle timeout")
        return self

    def session_limits(self) -> SessionLimits:
        return SessionLimits(idle=timedelta(seconds=self.idle_timeout_s),
                             max_age=timedelta(seconds=self.session_max_age_s),
                             kiosk_max_age=timedelta(seconds=self.kiosk_max_age_s))


def load_settings(env: Mapping[str, str] | None = None) -> DashboardSettings:
    """Settings from ``env`` (default: os.environ); a bad value raises ValueError naming the variable."""
    env = os.environ if env is None else env
    values = {field: env[var] for field, var in ENV.items() if env.get(var)}
    try:
        return DashboardSettings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a rule between settings (idle timeout vs. max age)
            raise ValueError(f"bad dashboard settings {ENV['idle_timeout_s']} / {ENV['session_max_age_s']}: "
                             f"{err.get('ctx', {}).get('error', err['msg'])}") from None
        var = ENV.get(str(err["loc"][0]), str(err["loc"][0]))
        raise ValueError(f"bad dashboard setting {var}={values.get(str(err['loc'][0]))!r}: {err['msg']}") from None
