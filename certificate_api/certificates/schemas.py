"""Request and response bodies of the certificate routes."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, field_validator

from schema.base import rfc3339

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]
KeyTypeName = Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"]
StatusName = Literal["active", "inactive", "revoked", "expired"]
RevocationReason = Literal[
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
]

EXAMPLE_PEM = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"


class CertificateCreate(BaseModel):
    """A certificate request: names, and either a key type (we make the key) or a CSR."""

    # strict: `"is_active": 0` or `"validity_days": "90"` is refused as the document says,
    # not quietly converted.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "common_name": "www.example.com",
                    "dns_names": ["example.com"],
                    "key_type": "ec-p256",
                    "validity_days": 90,
                },
                {
                    "common_name": "api.example.com",
                    "csr": "-----BEGIN CERTIFICATE REQUEST-----\n...\n"
                    "-----END CERTIFICATE REQUEST-----",
                },
            ]
        },
    )

    common_name: str = Field(
        min_length=1, max_length=253, description="a DNS name or IP address; also put in the SANs"
    )
    dns_names: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=100
    )
    ip_addresses: list[Annotated[str, Field(min_length=1, max_length=45)]] = Field(
        default_factory=list, max_length=100
    )
    key_type: KeyTypeName | None = Field(
        default=None, description="default ec-p256; with a CSR, must match the CSR's key if given"
    )
    validity_days: int | None = Field(
        default=None, ge=1, description="1 to MAX_VALIDITY_DAYS, default 90"
    )
    csr: str | None = Field(default=None, max_length=32768, description="PEM PKCS#10 request")
    is_active: bool = True


class CertificateUpdate(BaseModel):
    """Hold (false) or release (true) a certificate."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"is_active": False}]}
    )

    is_active: bool


class RevokeRequest(BaseModel):
    """Permanent revocation with an RFC 5280 reason; for keyCompromise, optionally a proof
    of possession of the private key, which blocks the key for every account."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"reason": "superseded"},
                {"reason": "keyCompromise", "key_proof": "eyJhbGciOiJFUzI1NiJ9.eyJjZXJ0..."},
            ]
        },
    )

    reason: RevocationReason
    key_proof: str | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        description='with keyCompromise only: a compact JWS over {"certificate_id": "<id>"} '
        "signed by the certificate's private key (alg ES256 for P-256, ES384 for P-384, "
        "RS256 for RSA, EdDSA for Ed25519); blocks the key for every account, not only "
        "the certificate's owner",
    )


class CertificateOut(BaseModel):
    """A certificate as clients see it."""

    id: uuid.UUID
    account_id: uuid.UUID
    serial_number: str = Field(description="lowercase hex, no separators")
    common_name: str
    dns_names: list[str]
    ip_addresses: list[str]
    key_type: str
    is_active: bool
    status: StatusName
    revocation_reason: str | None
    not_before: Timestamp
    not_after: Timestamp
    certificate_pem: str
    chain_pem: str = Field(description="issuing CA certificates, leaf excluded, nearest first")
    has_private_key: bool
    renewed_from: uuid.UUID | None = Field(description="the certificate this one renews")
    created_at: Timestamp
    updated_at: Timestamp


class CertificateCreated(CertificateOut):
    """The 201 of an issuance; carries the private key only when the service made it."""

    private_key_pem: str | None = Field(default=None, description="PKCS#8 PEM; only in this reply")


class CertificatePage(BaseModel):
    """One page of a list, newest first."""

    items: list[CertificateOut]
    next_cursor: str | None


class ListQuery(BaseModel):
    """The query string of a list."""

    active: bool | None = Field(default=None, description="only active (true) or not active")
    status: StatusName | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)
    account_id: uuid.UUID | None = Field(default=None, description="admins: one account")
    expires_before: AwareDatetime | None = Field(
        default=None, description="only those whose notAfter is earlier (RFC 3339, with offset)"
    )

    @field_validator("expires_before", mode="before")
    @classmethod
    def _rfc3339_only(cls, value: object) -> object:
        # Pydantic would also read a number as Unix time: the document promises RFC 3339.
        if value is not None and not (isinstance(value, str) and RFC3339.fullmatch(value)):
            raise ValueError("must be an RFC 3339 date-time with an offset")
        return value
