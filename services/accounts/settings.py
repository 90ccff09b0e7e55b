"""Account settings: environment variables ONESTOP_ACCOUNTS_* (or the `.env` file)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccountSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_ACCOUNTS_", env_file=".env", extra="ignore")

    # Staff sign-in lock-out (API.md: 10 failures within 15 minutes, per account or per address)
    login_max_failures: int = Field(default=10, ge=1)
    login_failure_window_minutes: float = Field(default=15, gt=0)
    # Staff sessions end after this long without a refresh (等保 2.0: 登录连接超时自动退出);
    # citizens keep ONESTOP_REFRESH_TOKEN_DAYS (the mini-program signs in again silently anyway).
    staff_refresh_token_hours: float = Field(default=12, gt=0)
    # Staff password policy (等保 2.0 身份鉴别: 复杂度要求)
    password_min_length: int = Field(default=10, ge=8, le=128)
    password_min_classes: int = Field(default=3, ge=1, le=4)  # of lower, upper, digit, other


@lru_cache
def get_account_settings() -> AccountSettings:
    return AccountSettings()
