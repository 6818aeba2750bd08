"""Account service settings: the shared ones plus hashing, tokens and throttling."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from schema.settings import CommonSettings


class AccountSettings(CommonSettings):
    """Settings of the account service (environment and `.env`)."""

    token_private_key: SecretStr | None = None
    token_private_key_file: Path | None = None
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)

    # argon2id; OWASP's 2024 floor is m=19 MiB, t=2, p=1. Raising any of these rehashes
    # each password at its owner's next login.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_cost: int = Field(default=19456, ge=8, description="KiB")
    argon2_parallelism: int = Field(default=1, ge=1)

    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_client: int = Field(default=50, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # Sign-ups from one client address per hour (each costs an argon2 hash).
    signup_rate_per_hour: int = Field(default=30, ge=1)

    # Origins allowed to call the token endpoint from a browser (the certificate /docs).
    cors_origins: list[str] = Field(default_factory=list)

    def allowed_origins(self) -> set[str]:
        """The configured origins plus the certificate service's own (its /docs)."""
        return {*self.cors_origins, self.public_base_url}
