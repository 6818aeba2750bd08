"""Request and response bodies of the domain authorization routes."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from certificate_api.certificates.schemas import Timestamp


class DomainCreate(BaseModel):
    """A name to be authorized for: a DNS name (no wildcard) or an IP address."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # `"include_subdomains": 0` is refused, as the document says
        json_schema_extra={"examples": [{"name": "example.com", "include_subdomains": True}]},
    )

    name: str = Field(min_length=1, max_length=253)
    include_subdomains: bool = Field(
        default=False, description="every name under it too (proved with dns-01 only)"
    )


class ValidateRequest(BaseModel):
    """Which challenge to check."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["http-01", "dns-01"]


class ChallengeOut(BaseModel):
    """A way to prove control, and what to publish for it."""

    type: Literal["http-01", "dns-01"]
    token: str
    status: Literal["pending", "processing", "valid", "invalid"]
    key_authorization: str
    url: str | None = Field(default=None, description="http-01: where it is fetched")
    record_name: str | None = Field(default=None, description="dns-01: the TXT record's name")
    record_value: str | None = Field(default=None, description="dns-01: the TXT value")


class DomainOut(BaseModel):
    """A domain authorization."""

    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    include_subdomains: bool
    status: Literal["pending", "valid", "invalid", "expired"]
    expires_at: Timestamp
    error: str | None
    challenges: list[ChallengeOut]
    created_at: Timestamp
    validated_at: Timestamp | None


class DomainPage(BaseModel):
    """One page of authorizations, newest first."""

    items: list[DomainOut]
    next_cursor: str | None
