"""Dashboard settings from the environment (validated, so a typo fails loudly at start)."""

from __future__ import annotations

import os
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ward.store.engine import DEFAULT_URL

ENV = {
    "db_url": "WARD_DB_URL",
    "api_url": "WARD_API_URL",
    "api_token": "WARD_API_TOKEN",
    "refresh_s": "WARD_DASH_REFRESH_S",
    "stale_after_s": "WARD_DASH_STALE_AFTER_S",
    "escalate_after_s": "WARD_ESCALATE_AFTER_S",
    "spark_window_s": "WARD_DASH_SPARK_WINDOW_S",
}


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


def load_settings(env: Mapping[str, str] | None = None) -> DashboardSettings:
    """Settings from ``env`` (default: os.environ); a bad value raises ValueError naming the variable."""
    env = os.environ if env is None else env
    values = {field: env[var] for field, var in ENV.items() if env.get(var)}
    try:
        return DashboardSettings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        var = ENV.get(str(err["loc"][0]), str(err["loc"][0]))
        raise ValueError(f"bad dashboard setting {var}={values.get(str(err['loc'][0]))!r}: {err['msg']}") from None
