"""SLA settings: environment variables ONESTOP_SLA_* (or the `.env` file)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SlaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_SLA_", env_file=".env", extra="ignore")

    due_soon_days: int = Field(default=1, ge=0)  # a case is due soon with this many working days left or fewer
    escalate_up_after_hours: float = Field(default=24.0, ge=0)  # level 1 → level 2 if still open after this
    sweep_interval_minutes: float = Field(default=15.0, gt=0)
    sweep_batch_size: int = Field(default=2000, ge=1)
    calendar_cache_seconds: float = Field(default=30.0, ge=0)  # other processes see a calendar edit within this
    max_suspend_days: int = Field(default=180, ge=1)  # the longest suspension a clerk may set, in working days


@lru_cache
def get_sla_settings() -> SlaSettings:
    return SlaSettings()
