"""Every table, imported in one place so the metadata is complete wherever it is used."""

from schema.accounts import Account, LoginFailure, Role
from schema.acme import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeEabKey,
    AcmeNonce,
    AcmeOrder,
)
from schema.base import Base
from schema.certificates import (
    CaRole,
    Certificate,
    CertificateAuthority,
    CertificateHistory,
    CertificateKey,
    CrlState,
    IdempotencyKey,
    Status,
)
from schema.domains import ChallengeType, DomainAuthorization, DomainStatus
from schema.events import Event, EventState, EventType, WebhookEndpoint
from schema.rates import RateCounter

__all__ = [
    "Account",
    "AcmeAccount",
    "AcmeAuthorization",
    "AcmeChallenge",
    "AcmeEabKey",
    "AcmeNonce",
    "AcmeOrder",
    "Base",
    "CaRole",
    "Certificate",
    "CertificateAuthority",
    "CertificateHistory",
    "CertificateKey",
    "ChallengeType",
    "CrlState",
    "DomainAuthorization",
    "DomainStatus",
    "Event",
    "EventState",
    "EventType",
    "IdempotencyKey",
    "LoginFailure",
    "RateCounter",
    "Role",
    "Status",
    "WebhookEndpoint",
]
