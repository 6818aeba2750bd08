"""ACME resources as clients see them (RFC 8555 section 7.1), and their URLs, all built
from PUBLIC_BASE_URL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.acme.orders import authz_status
from schema.acme import AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder
from schema.base import rfc3339

PREFIX = "/acme"


@dataclass(frozen=True)
class Urls:
    """Every ACME URL of this service."""

    base: str  # PUBLIC_BASE_URL

    def of(self, path: str) -> str:
        """The absolute URL of a path of this service."""
        return f"{self.base}{path}"

    def directory(self) -> dict[str, Any]:
        """The directory (RFC 8555 section 7.1.1)."""
        return {
            "newNonce": self.of(f"{PREFIX}/new-nonce"),
            "newAccount": self.of(f"{PREFIX}/new-account"),
            "newOrder": self.of(f"{PREFIX}/new-order"),
            "revokeCert": self.of(f"{PREFIX}/revoke-cert"),
            "keyChange": self.of(f"{PREFIX}/key-change"),
            "renewalInfo": self.of(f"{PREFIX}/renewal-info"),
            "meta": {
                "externalAccountRequired": True,
                "website": self.of("/docs"),
            },
        }

    def account(self, account_id: uuid.UUID | str) -> str:
        """An account's URL (its `kid`)."""
        return self.of(f"{PREFIX}/acct/{account_id}")

    def order(self, order_id: uuid.UUID) -> str:
        """An order's URL."""
        return self.of(f"{PREFIX}/order/{order_id}")

    def authz(self, authz_id: uuid.UUID) -> str:
        """An authorization's URL."""
        return self.of(f"{PREFIX}/authz/{authz_id}")

    def challenge(self, challenge_id: uuid.UUID) -> str:
        """A challenge's URL."""
        return self.of(f"{PREFIX}/chall/{challenge_id}")

    def certificate(self, certificate_id: uuid.UUID) -> str:
        """An issued certificate's URL (PEM chain)."""
        return self.of(f"{PREFIX}/cert/{certificate_id}")


def account(urls: Urls, row: AcmeAccount) -> dict[str, Any]:
    """An account object."""
    return {
        "status": row.status,
        "contact": list(row.contact),
        "orders": f"{urls.account(row.id)}/orders",
        "createdAt": rfc3339(row.created_at),
    }


def order(urls: Urls, row: AcmeOrder, authzs: list[AcmeAuthorization]) -> dict[str, Any]:
    """An order object."""
    body: dict[str, Any] = {
        "status": row.status,
        "expires": rfc3339(row.expires_at),
        "identifiers": row.identifiers,
        "authorizations": [urls.authz(a.id) for a in authzs],
        "finalize": f"{urls.order(row.id)}/finalize",
    }
    if row.certificate_id is not None:
        body["certificate"] = urls.certificate(row.certificate_id)
    if row.error is not None:
        body["error"] = row.error
    if row.replaces is not None:
        body["replaces"] = row.replaces
    return body


def challenge(urls: Urls, row: AcmeChallenge) -> dict[str, Any]:
    """A challenge object."""
    body: dict[str, Any] = {
        "type": row.type,
        "url": urls.challenge(row.id),
        "status": row.status,
        "token": row.token,
    }
    if row.validated_at is not None:
        body["validated"] = rfc3339(row.validated_at)
    if row.error is not None:
        body["error"] = row.error
    return body


def authorization(
    urls: Urls, row: AcmeAuthorization, challenges: list[AcmeChallenge], now: datetime
) -> dict[str, Any]:
    """An authorization object: the identifier as the base name, `wildcard` for a
    wildcard's (RFC 8555 section 7.1.4). One made valid by a domain authorization has no
    challenges to show."""
    body: dict[str, Any] = {
        "identifier": {"type": row.identifier_type, "value": row.value},
        "status": authz_status(row, now),
        "expires": rfc3339(row.expires_at),
        "challenges": [challenge(urls, c) for c in challenges],
    }
    if row.wildcard:
        body["wildcard"] = True
    return body
