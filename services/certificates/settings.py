"""Settings of the e-certificate domain (environment variables with the ONESTOP_ prefix, or .env).

Kept here rather than in services/config.py so the certificate service can grow its own knobs;
the shared ones (var_dir, redis_url, public_base_url, rate_limits, issuer_pkcs12_*) stay there.
The public endpoints' rate limits are services.ratelimit's (ONESTOP_RATE_LIMIT_PUBLIC_STATUS,
ONESTOP_RATE_LIMIT_PUBLIC_VERIFY).

    ONESTOP_ISSUER_KEYS_DIR            production: one key per issuing authority, named by its
                                       credit code: <code>.p12 (PKCS#12) or <code>.pem (private
                                       key + certificate chain, PEM). Empty: the development chain.
    ONESTOP_ISSUER_KEYS_PASSWORD       password of those files (a <code>.password file beside a
                                       key overrides it for that key)
    ONESTOP_CERTIFICATE_STATUS_CACHE_SECONDS   public status answers cached in Redis (0: off)
    ONESTOP_VERIFY_MAX_BYTES           largest PDF accepted by POST /public/certificates/verify
    ONESTOP_GRANT_MAX_DAYS             longest a holder may share a certificate for
    ONESTOP_CHECK_LOG_FLUSH_SECONDS    how often buffered public-check log rows are written
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CertificateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_", env_file=".env", extra="ignore")

    issuer_keys_dir: Path | None = None
    issuer_keys_password: str = ""

    certificate_status_cache_seconds: int = Field(default=300, ge=0)
    verify_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    grant_max_days: int = Field(default=90, ge=1)
    check_log_flush_seconds: float = Field(default=1.0, gt=0)


@lru_cache
def get_certificate_settings() -> CertificateSettings:
    return CertificateSettings()
