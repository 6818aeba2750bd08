"""Certificate service settings: the shared ones plus the CA, key sealing and revocation."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from certificate_api.pki.keys import KeyType
from schema.settings import CommonSettings


class CertificateSettings(CommonSettings):
    """Settings of the certificate service (environment and `.env`)."""

    public_url_required: ClassVar[bool] = True

    # Master keys sealing private keys at rest: `id:base64` lines, the current one first.
    master_keys: SecretStr | None = None
    master_keys_file: Path | None = None

    default_validity_days: int = Field(default=90, ge=1)
    ca_name: str = "Tessera"
    ca_root_key_type: str = "ec-p384"
    ca_intermediate_key_type: str = "ec-p256"

    crl_validity_hours: int = Field(default=24, ge=1)
    # The root's CRL (it lists revoked intermediates) is valid this long: re-sign it before.
    root_crl_validity_days: int = Field(default=365, ge=1)
    # How often each process re-reads the CA rows to pick up a rotated intermediate.
    ca_refresh_seconds: float = Field(default=30.0, gt=0)
    # How stale a served CRL may be: rebuilds after changes are coalesced over this long.
    # 0 rebuilds after every change (at the next request).
    crl_refresh_seconds: float = Field(default=5.0, ge=0)
    # OCSP answers are valid this long; short, because a hold can be released at any time.
    ocsp_validity_hours: int = Field(default=1, ge=1)
    ocsp_responder_key_type: str = "ec-p256"
    ocsp_responder_validity_days: int = Field(default=30, ge=3)

    # Pre-generated keys per key type, refilled by `key_pool_workers` background processes.
    key_pool_sizes: dict[str, int] = {"rsa-2048": 32}
    key_pool_workers: int = Field(default=1, ge=1)
    key_pool_fill_on_start: bool = True

    @field_validator("key_pool_sizes")
    @classmethod
    def _known_key_types(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - {key_type.value for key_type in KeyType})
        if unknown:
            raise ValueError(f"unknown key types {unknown}")
        return value

    # Threads running route code per process; default: the database pool's size.
    request_threads: int | None = Field(default=None, ge=1)
    # Requests in progress beyond this get 503 with Retry-After instead of queueing forever.
    max_in_flight: int = Field(default=256, ge=1)
    # A request body must arrive whole within this; a slower one is answered 408.
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    # Certificates one account may have issued per minute (429 with Retry-After past it).
    issuance_rate_per_minute: int = Field(default=600, ge=1)
    # RSA keys made on demand (not from the pool) at once per process; past it, 503.
    max_slow_key_generations: int = Field(default=2, ge=1)
