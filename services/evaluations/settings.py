"""好差评 settings: ONESTOP_EVALUATION_* (or the `.env` file)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EvaluationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_EVALUATION_", env_file=".env", extra="ignore")

    # A case not rated within this many working days of its closing counts as 满意 (and can no
    # longer be rated); `default_satisfied=false` turns that off (unrated stays unrated).
    default_satisfied: bool = True
    window_working_days: int = Field(default=5, ge=1, le=365)
    rectification_working_days: int = Field(default=15, ge=1, le=365)


@lru_cache
def get_evaluation_settings() -> EvaluationSettings:
    return EvaluationSettings()
