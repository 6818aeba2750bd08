"""Settling ACME challenges, in the worker (worker/validation_runner.py) beside the REST
domain validations, with the same checker.

A challenge the client answered is `processing`: the row is the queue entry, claimed under a
lease beside the REST validations, fairly across customers (worker/validation_queue.py); a
worker killed mid-check leaves it to be claimed again. The outcome commits with
everything it changes: the challenge, its authorization, its order (`ready` once every
authorization is valid; `invalid` on a failure) and, on success, the customer's domain
authorization for the name with its `domain.validated` event, so the REST API and later
orders see the proof too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.acme.limits import FAILURES_SCOPE, count_hit
from core.acme.problems import AcmeProblem
from core.domains import Subject, grant
from pki import names
from schema.accounts import Account
from schema.acme import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeOrder,
    AuthzStatus,
    ChallengeStatus,
    OrderStatus,
)
from schema.base import utcnow
from schema.domains import domain_event_data
from schema.events import EventType, record_event


@dataclass(frozen=True)
class ClaimedChallenge:
    """A challenge this worker holds the lease on, with what checking it needs."""

    id: uuid.UUID
    type: str
    token: str
    thumbprint: str
    name: str  # the identifier's value (a wildcard's base name)
    wildcard: bool


# The checker's reasons (worker/validation.py), told apart by phrases of their wording. Each
# phrase holds a space, which no name, URL, token or record name in a message can: a name
# such as `dns1.example.com` or `caa.example.com` says nothing of why the check failed.
_REASONS = (
    ("serverInternal", ("unexpected failure happened in the validator",)),
    ("rejectedIdentifier", ("name no longer accepted",)),
    ("caa", ("caa lookup of ", "caa at ", "caa records at ")),
    ("incorrectResponse", (" holds the expected value",)),
    ("dns", ("dns lookup of ", "no txt record at ", " has no a or aaaa record")),
    ("tls", ("tls handshake", "the tls server ")),
    ("connection", ("could not connect", "timed out", "no answer within ", "does not connect ")),
)


def error_kind(challenge_type: str, message: str) -> str:
    """The ACME error type of a failed check, from the checker's reason."""
    text = message.lower()
    for kind, phrases in _REASONS:
        if kind == "tls" and challenge_type != "tls-alpn-01":
            continue
        if any(phrase in text for phrase in phrases):
            return kind
    return "incorrectResponse"


def record(session: Session, claimed: ClaimedChallenge, error: str | None, days: int) -> bool:
    """The outcome, with all it changes, in one transaction; nothing if the challenge is no
    longer processing (settled by another worker whose lease ran out first). Returns whether
    anything was recorded."""
    now = utcnow()
    found = session.execute(
        select(AcmeChallenge, AcmeAuthorization, AcmeOrder, AcmeAccount)
        .join(AcmeAuthorization, AcmeAuthorization.id == AcmeChallenge.authorization_id)
        .join(AcmeOrder, AcmeOrder.id == AcmeAuthorization.order_id)
        .join(AcmeAccount, AcmeAccount.id == AcmeOrder.acme_account_id)
        .where(
            AcmeChallenge.id == claimed.id,
            AcmeChallenge.status == ChallengeStatus.PROCESSING.value,
        )
        .with_for_update(of=(AcmeChallenge, AcmeAuthorization, AcmeOrder))
    ).first()
    if found is None:
        return False
    challenge, authz, order, account = found
    challenge.leased_until = None
    # Another challenge of the authorization (a client may answer several) settled it first,
    # or the client deactivated it: this outcome is the challenge's only (RFC 8555 section
    # 7.1.6: a valid, invalid or deactivated authorization stays so).
    settled = authz.status != AuthzStatus.PENDING
    if error is None and settled:
        challenge.status = ChallengeStatus.VALID.value
        challenge.validated_at = now
    elif error is None:
        _passed(session, (challenge, authz, order, account), days, now)
    else:
        problem = AcmeProblem(error_kind(challenge.type, error), error)
        challenge.status = ChallengeStatus.INVALID.value
        challenge.error = problem.body()
        if not settled:
            authz.status = AuthzStatus.INVALID.value
            if order.status in (OrderStatus.PENDING, OrderStatus.READY):
                order.status = OrderStatus.INVALID.value
                order.error = problem.body()
                order.updated_at = now
        count_hit(session, FAILURES_SCOPE, str(account.account_id), now)
    session.commit()
    return True


def _passed(
    session: Session,
    rows: tuple[AcmeChallenge, AcmeAuthorization, AcmeOrder, AcmeAccount],
    days: int,
    now: datetime,
) -> None:
    """A passed challenge: the customer's domain authorization for the name (a wildcard's
    with include_subdomains), the ACME authorization valid, the order ready once all are."""
    challenge, authz, order, account = rows
    challenge.status = ChallengeStatus.VALID.value
    challenge.validated_at = now
    customer = session.get(Account, account.account_id)
    if customer is None or customer.deleted_at is not None:
        return  # the customer is gone: its ACME account is deactivated with it
    subject = Subject(authz.value, authz.wildcard, names.is_ip(authz.value))
    domain = grant(session, customer, subject, days, now)
    record_event(
        session,
        EventType.DOMAIN_VALIDATED,
        domain.id,
        domain_event_data(domain, domain.status),
    )
    authz.status = AuthzStatus.VALID.value
    authz.expires_at = domain.expires_at
    authz.domain_authorization_id = domain.id
    if order.status != OrderStatus.PENDING:
        return
    statuses = session.scalars(
        select(AcmeAuthorization.status).where(AcmeAuthorization.order_id == order.id)
    ).all()
    if all(status == AuthzStatus.VALID for status in statuses):
        order.status = OrderStatus.READY.value
        order.updated_at = now
