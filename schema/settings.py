"""Settings both services share, read from the environment and `.env` (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every process of the product reads: database, ports, public URLs, token checks."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    var_dir: Path = Path("var")
    database_url: str = Field(default="", description="SQLAlchemy URL; SQLite under var/ if empty")
    host: str = "127.0.0.1"
    account_api_port: int = 5001
    certificate_api_port: int = 5002
    public_base_url: str = "http://127.0.0.1:5002"
    account_api_url: str = "http://127.0.0.1:5001"
    max_validity_days: int = Field(default=199, ge=1, le=3650)
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)

    # Access tokens: EdDSA. Only the account service has the private key.
    token_public_key: SecretStr | None = None
    token_public_key_file: Path | None = None
    token_issuer: str = "tessera-accounts"
    token_audience: str = "tessera"

    # Webhooks: the secret is needed by whoever signs (the worker); kept here so it is one setting.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None

    # Who may have which names: core/policy.py, core/domains.py, worker/validation.py.
    name_authorization: Literal["required", "open"] = "required"
    name_policy_allow: str = Field(default="", description="DNS suffixes and IP networks")
    name_policy_deny: str = Field(default="", description="DNS suffixes and IP networks")
    domain_authorization_days: int = Field(default=30, ge=1, le=3650)
    validation_http_port: int = Field(default=80, ge=1, le=65535)
    validation_tls_port: int = Field(default=443, ge=1, le=65535)
    validation_dns_servers: str = Field(default="", description="host:port, comma-separated")
    # Unset: loopback, link-local and the cloud metadata addresses; empty: none.
    validation_deny_networks: str | None = None
    caa_identities: str = Field(default="", description="issuer domains, comma-separated")
    validation_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("public_base_url", "account_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under `var_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'tessera.db').resolve()}"
