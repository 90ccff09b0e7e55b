"""Rate-limit settings: ONESTOP_RATE_LIMIT_<NAME>=<count>/<second|minute|hour|day>.

The master switch is `ONESTOP_RATE_LIMITS` (services.config: `on` | `off`); `off` is for load
tests on a trusted network. Per-address limits are generous: mobile carriers put thousands of
phones behind one address (CGNAT), and a village station's villagers share one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
          "d": 86400, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*")


@dataclass(frozen=True)
class Rate:
    """`count` requests per `period` seconds (a burst of `count` is allowed, then one every
    period/count seconds)."""

    count: int
    period: float

    @property
    def interval(self) -> float:
        return self.period / self.count

    def __str__(self) -> str:
        return f"{self.count}/{int(self.period)}s"


def parse_rate(text: str) -> Rate:
    """`"10/minute"`, `"5/15minutes"`, `"100/hour"` → Rate."""
    match = _RATE.fullmatch(text.lower())
    if match is None or match.group(3) not in _UNITS or int(match.group(1)) < 1:
        raise ValueError(f"not a rate: {text!r} (expected e.g. 10/minute)")
    multiple = int(match.group(2) or 1)
    if multiple < 1:
        raise ValueError(f"not a rate: {text!r}")
    return Rate(count=int(match.group(1)), period=float(multiple * _UNITS[match.group(3)]))


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_RATE_LIMIT_", env_file=".env", extra="ignore")

    # per client address
    wechat_login: str = "120/minute"
    staff_login: str = "30/minute"
    refresh: str = "120/minute"
    public_status: str = "120/minute"  # the public certificate status check
    public_verify: str = "20/minute"  # a PDF verification costs ~100 ms of CPU
    # per signed-in principal
    real_name: str = "10/hour"  # each face verification is a paid WeChat call
    submit: str = "30/minute"
    upload: str = "60/minute"
    consent: str = "30/hour"
    evaluation: str = "20/minute"
    # in-process backend: most identities remembered at once (oldest forgotten first)
    memory_max_keys: int = 100_000

    @field_validator("wechat_login", "staff_login", "refresh", "public_status", "public_verify", "real_name",
                     "submit", "upload", "consent", "evaluation")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    def rate(self, name: str) -> Rate:
        """The configured rate of a named limit (`sign-in` and `sign_in` are the same name)."""
        value = getattr(self, name.replace("-", "_"), None)
        if not isinstance(value, str):
            raise KeyError(f"no rate limit named {name!r}")
        return parse_rate(value)


@lru_cache
def get_rate_limit_settings() -> RateLimitSettings:
    return RateLimitSettings()
