"""Consent settings: ONESTOP_CONSENTS_*."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_CONSENTS_", env_file=".env", extra="ignore")

    valid_days: int = Field(default=30, ge=1, le=365)  # an unused consent lapses after this many days
    max_active_per_person: int = Field(default=20, ge=1)


@lru_cache
def get_consent_settings() -> ConsentSettings:
    return ConsentSettings()
