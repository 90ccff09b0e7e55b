"""Settings of the regional figures: environment variables ONESTOP_FIGURES_* (or `.env`)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FiguresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_FIGURES_", env_file=".env", extra="ignore")

    # How often the worker folds changed cases into the rollups: the figures' staleness.
    refresh_seconds: float = Field(default=60.0, gt=0)
    # Each refresh looks back this far before its watermark, so that a transaction that set a
    # case's updated_at before the last refresh began but committed after it is not missed.
    # Must exceed the longest write transaction (and the clock skew between app machines).
    overlap_seconds: float = Field(default=300.0, ge=0)
    # The daily reconciliation (every case's fact recomputed in SQL, differences folded in): heals
    # changes made without touching updated_at, and a changed working-day calendar.
    reconcile_hour: int = Field(default=3, ge=0, le=23)  # Asia/Shanghai
    batch_size: int = Field(default=2000, ge=1, le=20000)  # cases folded per round trip


@lru_cache
def get_figures_settings() -> FiguresSettings:
    return FiguresSettings()
