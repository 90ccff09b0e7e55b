"""Settings: environment variables with the ONESTOP_ prefix, or a `.env` file.

The defaults give the zero-setup demo: SQLite under var/, no Redis, the worker inside the
server process, the shipped fake WeChat server mounted in the same process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CERTIFICATE_TYPES_DIR = PROJECT_ROOT / "e-certificates"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
WORKFLOWS_DIR = PROJECT_ROOT / "workflows"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_", env_file=".env", extra="ignore")

    var_dir: Path = PROJECT_ROOT / "var"
    database_url: str = ""  # empty: sqlite:///<var_dir>/onestop.db
    redis_url: str | None = None

    demo: bool = True  # demo accounts, demo passwords, the fake WeChat server
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    run_worker_in_server: bool = True
    worker_poll_seconds: float = 1.0

    # WeChat. Empty base URL in demo mode: the fake server mounted at /fake-wechat.
    wechat_base_url: str = ""
    wechat_appid: str = "wxdemo0000000000"
    wechat_secret: str = "demo-secret"
    wechat_timeout_seconds: float = 5.0

    # Tokens
    jwt_issuer: str = "onestop"
    jwt_audience: str = "onestop-api"
    access_token_minutes: int = 15
    refresh_token_days: int = 30

    # Key material. Empty: generated into var/keys/ on first use (demo only).
    jwt_private_key_path: Path | None = None
    pii_encryption_key: str = ""  # base64 of 32 bytes (AES-256-GCM)
    pii_hash_key: str = ""  # base64 of >= 32 bytes (HMAC-SHA256)

    # E-certificate issuing chain. Empty: a dev CA -> issuer chain generated under var/pki/.
    issuer_pkcs12_path: Path | None = None
    issuer_pkcs12_password: str = ""

    upload_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    rate_limits: str = "on"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'onestop.db'}"

    @property
    def resolved_wechat_base_url(self) -> str:
        return self.wechat_base_url or f"{self.public_base_url.rstrip('/')}/fake-wechat"

    @property
    def keys_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def pki_dir(self) -> Path:
        return self.var_dir / "pki"

    @property
    def storage_dir(self) -> Path:
        return self.var_dir / "storage"


@lru_cache
def get_settings() -> Settings:
    return Settings()
