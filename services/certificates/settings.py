"""Settings of the e-certificate domain (environment variables with the ONESTOP_ prefix, or .env).

Kept here rather than in services/config.py so the certificate service can grow its own knobs;
the shared ones (var_dir, redis_url, public_base_url, rate_limits, issuer_pkcs12_*) stay there.

    ONESTOP_ISSUER_KEYS_DIR            production: one key per issuing authority, named by its
                                       credit code: <code>.p12 (PKCS#12) or <code>.pem (private
                                       key + certificate chain, PEM). Empty: the development chain.
    ONESTOP_ISSUER_KEYS_PASSWORD       password of those files (a <code>.password file beside a
                                       key overrides it for that key)
    ONESTOP_CERTIFICATE_STATUS_CACHE_SECONDS   public status answers cached in Redis (0: off)
    ONESTOP_PUBLIC_STATUS_RATE         e.g. "120/60": requests per window seconds, per client
    ONESTOP_PUBLIC_VERIFY_RATE         the same for PDF verification (costs ~100 ms CPU each)
    ONESTOP_VERIFY_MAX_BYTES           largest PDF accepted by POST /public/certificates/verify
    ONESTOP_GRANT_MAX_DAYS             longest a holder may share a certificate for
    ONESTOP_CHECK_LOG_FLUSH_SECONDS    how often buffered public-check log rows are written
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def parse_rate(text: str) -> tuple[int, int]:
    """"120/60" -> (120 requests, 60 seconds). "120/minute" and "20/hour" are accepted too."""
    count, _, window = text.partition("/")
    words = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
    seconds = words.get(window.strip().rstrip("s"), None)
    if seconds is None:
        seconds = int(window)
    limit = int(count)
    if limit < 1 or seconds < 1:
        raise ValueError("a rate is <requests>/<seconds>, both at least 1")
    return limit, seconds


class CertificateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_", env_file=".env", extra="ignore")

    issuer_keys_dir: Path | None = None
    issuer_keys_password: str = ""

    certificate_status_cache_seconds: int = Field(default=300, ge=0)
    public_status_rate: str = "120/60"
    public_verify_rate: str = "20/60"
    verify_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    grant_max_days: int = Field(default=90, ge=1)
    check_log_flush_seconds: float = Field(default=1.0, gt=0)

    @field_validator("public_status_rate", "public_verify_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value


@lru_cache
def get_certificate_settings() -> CertificateSettings:
    return CertificateSettings()
