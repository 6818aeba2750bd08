"""Settings both services share, read from the environment and `.env` (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schema.clients import Network, parse_networks

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (recognised, not bound)


def http_url(host: str, port: int) -> str:
    """`http://host:port`, with an IPv6 address in brackets."""
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class CommonSettings(BaseSettings):
    """What every process of the product reads: database, ports, public URLs, token checks."""

    # An invalid setting is reported without the values read: they include secrets.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_file_encoding="utf-8", hide_input_in_errors=True
    )

    var_dir: Path = Path("var")
    database_url: str = Field(default="", description="SQLAlchemy URL; SQLite under var/ if empty")
    # Where LISTEN and migrations go when DATABASE_URL is a pooler in transaction mode.
    database_direct_url: str = Field(
        default="", description="direct PostgreSQL; DATABASE_URL if empty"
    )
    host: str = "127.0.0.1"
    account_api_port: int = 5001
    certificate_api_port: int = 5002
    # Whether this process puts PUBLIC_BASE_URL where others rely on it (the certificate
    # service does), so that it must not be derived from a wildcard HOST.
    public_url_required: ClassVar[bool] = False
    # Empty: derived from HOST and the port (see `_derive_urls`).
    public_base_url: str = ""
    account_api_url: str = ""
    max_validity_days: int = Field(default=199, ge=1, le=3650)
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    # How long an Idempotency-Key is honoured (certificate service); the worker prunes after.
    idempotency_ttl_hours: int = Field(default=24, ge=1)

    # Reverse proxies whose X-Forwarded-For is believed for the client address (throttling,
    # rate limits, logs): networks or addresses, comma-separated. Empty: none.
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = ()

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

    # ACME (RFC 8555): core/acme/, certificate_api/acme/.
    acme_eab_ttl_hours: int = Field(default=24, ge=1, le=24 * 365)
    acme_orders_per_hour: int = Field(default=300, ge=1)
    acme_failed_validations_per_hour: int = Field(default=60, ge=1)

    @field_validator("public_base_url", "account_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, str) else value

    @field_validator("webhook_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _derive_urls(self) -> CommonSettings:
        """Unset public URLs follow HOST and the ports, so changing a port moves them too."""
        if not self.public_base_url and self.host_is_wildcard and self.public_url_required:
            # Certificates carry PUBLIC_BASE_URL (CRL, OCSP, issuer) and ACME clients are sent
            # to it: one built from 0.0.0.0 would be signed into certificates nobody can check.
            raise ValueError(
                f"HOST={self.host or '(empty)'} listens on every interface: set PUBLIC_BASE_URL "
                "to the address relying parties and ACME clients use"
            )
        if not self.public_base_url:
            self.public_base_url = http_url(self.host, self.certificate_api_port)
        if not self.account_api_url:
            self.account_api_url = http_url(self.host, self.account_api_port)
        return self

    @property
    def host_is_wildcard(self) -> bool:
        """Whether HOST means "every interface": no one reaches a service at that address."""
        return self.host.strip("[]") in WILDCARD_HOSTS

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under `var_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'tessera.db').resolve()}"

    @property
    def effective_direct_url(self) -> str:
        """A connection of its own to the server (LISTEN, migrations): DATABASE_DIRECT_URL, or
        the database URL when no pooler stands between."""
        return self.database_direct_url or self.effective_database_url
