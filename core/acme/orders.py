"""ACME orders, authorizations and challenges (RFC 8555 sections 7.4-7.5), on the
customer's domain authorizations.

An identifier already covered by a valid domain authorization of the customer gets a valid
ACME authorization at once; any other gets a pending one of its own (pending ones are never
shared between orders) with the challenges that can prove it. A client's response to a
challenge queues it for the worker (`core.acme.challenges`), which, when it passes, makes
the domain authorization that covers the name from then on. Finalization hands a CSR to the
core's issuance (`core.issuance.issue_certificate`), as the REST API does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import validation
from core.acme.limits import ORDERS_SCOPE, AcmeLimits, count_hit, refuse_after_failures
from core.acme.problems import AcmeProblem, identifier_problem, malformed, not_found, rate_limited
from core.acme.revocation import certificate_by_cert_id
from core.name_check import Grant, candidates
from core.policy import NamePolicy, is_public_suffix
from pki import names
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
from schema.domains import ChallengeType, DomainAuthorization, DomainStatus

ORDER_DAYS = 7  # how long an order (and its pending authorizations) may wait
MAX_IDENTIFIERS = 100


@dataclass(frozen=True)
class Identifier:
    """One identifier of an order, normalized: a DNS name (maybe a wildcard) or an address."""

    type: str
    value: str  # the wildcard's base name, without "*."
    wildcard: bool = False

    @property
    def name(self) -> str:
        """The name as it appears in a certificate."""
        return f"*.{self.value}" if self.wildcard else self.value

    def json(self) -> dict[str, str]:
        """As ACME shows it (RFC 8555 section 7.1.4: the wildcard's authorization shows the
        base name; the order shows the name)."""
        return {"type": self.type, "value": self.name}

    def challenge_types(self) -> tuple[ChallengeType, ...]:
        """What can prove it: dns-01 only for a wildcard; no dns-01 for an address."""
        if self.wildcard:
            return (ChallengeType.DNS_01,)
        if self.type == "ip":
            return (ChallengeType.HTTP_01, ChallengeType.TLS_ALPN_01)
        return (ChallengeType.HTTP_01, ChallengeType.DNS_01, ChallengeType.TLS_ALPN_01)


def identifier_of(item: Any) -> Identifier:
    """An order's identifier as given, normalized; a problem naming it otherwise."""
    if not isinstance(item, dict) or not isinstance(item.get("value"), str):
        raise malformed('each identifier is {"type", "value"}')
    kind, value = item.get("type"), item["value"]
    if kind == "ip":
        try:
            return Identifier("ip", str(names.parse_ip(value)))
        except names.InvalidName as exc:
            raise AcmeProblem(
                "rejectedIdentifier",
                str(exc),
                subproblems=[identifier_problem("rejectedIdentifier", item, "not an IP address")],
            ) from None
    if kind != "dns":
        raise AcmeProblem("unsupportedIdentifier", f"identifier type {kind!r}: dns and ip only")
    try:
        normal = names.parse_dns_name(value)
    except names.InvalidName as exc:
        raise AcmeProblem(
            "rejectedIdentifier",
            str(exc),
            subproblems=[identifier_problem("rejectedIdentifier", item, str(exc))],
        ) from None
    if normal.startswith("*."):
        return Identifier("dns", normal[2:], wildcard=True)
    return Identifier("dns", normal)


def parse_identifiers(payload: dict[str, Any]) -> list[Identifier]:
    """newOrder's identifiers, normalized, without repeats."""
    items = payload.get("identifiers")
    if not isinstance(items, list) or not items:
        raise malformed("an order needs a non-empty list of identifiers")
    if len(items) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers")
    for field in ("notBefore", "notAfter"):
        if payload.get(field) is not None:
            raise malformed(f"{field} is not supported: the validity is the CA's default")
    found: dict[Identifier, None] = {}
    for item in items:
        found[identifier_of(item)] = None
    return list(found)


def refuse_by_policy(identifiers: Sequence[Identifier], policy: NamePolicy) -> None:
    """`rejectedIdentifier`, one subproblem per name the CA's policy refuses."""
    refused = []
    for ident in identifiers:
        if ident.type == "ip":
            reason = policy.refusal_ip(names.parse_ip(ident.value))
        elif not ident.wildcard and is_public_suffix(ident.value):
            reason = "a public suffix is never certified"
        else:
            reason = policy.refusal_dns(ident.name)
        if reason is not None:
            refused.append(identifier_problem("rejectedIdentifier", ident.json(), reason))
    if refused:
        listed = ", ".join(p["identifier"]["value"] for p in refused)
        raise AcmeProblem(
            "rejectedIdentifier", f"the CA's policy refuses: {listed}", subproblems=refused
        )


# --- orders ---------------------------------------------------------------------------------


def _covering(
    session: Session, account_id: uuid.UUID, identifiers: Sequence[Identifier], now: datetime
) -> list[tuple[Grant, datetime]]:
    """The customer's valid domain authorizations that may cover any of the identifiers."""
    wanted = {c for ident in identifiers for c in candidates(ident.name)}
    da = DomainAuthorization
    rows = session.execute(
        select(da.id, da.name, da.include_subdomains, da.expires_at).where(
            da.account_id == account_id,
            da.status == DomainStatus.VALID.value,
            da.expires_at > now,
            da.name.in_(wanted),
        )
    ).all()
    return [(Grant(r.id, r.name, r.include_subdomains), r.expires_at) for r in rows]


def new_order(
    session: Session,
    account: AcmeAccount,
    payload: dict[str, Any],
    policy: NamePolicy,
    limits: AcmeLimits,
) -> tuple[AcmeOrder, list[AcmeAuthorization]]:
    """newOrder: the order with its authorizations (valid where a domain authorization
    covers the name, pending with challenges elsewhere). Commits."""
    identifiers = parse_identifiers(payload)
    refuse_by_policy(identifiers, policy)
    replaces = _replaced(session, account, payload.get("replaces"))
    now = utcnow()
    refuse_after_failures(session, account, limits, now)
    hits, window = count_hit(session, ORDERS_SCOPE, str(account.account_id), now)
    if hits > limits.orders_per_hour:
        session.commit()  # the refused call counts too
        raise rate_limited(
            f"at most {limits.orders_per_hour} new orders an hour per account",
            window.retry_after(now),
        )
    grants = _covering(session, account.account_id, identifiers, now)
    order = AcmeOrder(
        id=uuid.uuid4(),
        acme_account_id=account.id,
        status=OrderStatus.PENDING.value,
        identifiers=[ident.json() for ident in identifiers],
        expires_at=now + timedelta(days=ORDER_DAYS),
        replaces=replaces,
        created_at=now,
        updated_at=now,
    )
    authzs, pending = [], []
    for ident in identifiers:
        grant = next(((g, at) for g, at in grants if g.covers(ident.name)), None)
        authz = AcmeAuthorization(
            id=uuid.uuid4(),
            order_id=order.id,
            identifier_type=ident.type,
            value=ident.value,
            wildcard=ident.wildcard,
            status=AuthzStatus.VALID.value if grant else AuthzStatus.PENDING.value,
            expires_at=grant[1] if grant else order.expires_at,
            domain_authorization_id=grant[0].id if grant else None,
            created_at=now,
        )
        authzs.append(authz)
        if grant is None:
            pending.append((authz, ident))
    if not pending:  # every name covered already: ready at once
        order.status = OrderStatus.READY.value
        order.expires_at = min([order.expires_at, *(a.expires_at for a in authzs)])
    # No ORM relationships: parents go in first, a flush each (an insert, not an update).
    session.add(order)
    session.flush()
    session.add_all(authzs)
    session.flush()
    session.add_all(
        AcmeChallenge(
            id=uuid.uuid4(),
            authorization_id=authz.id,
            type=kind.value,
            token=validation.new_token(),
            status=ChallengeStatus.PENDING.value,
        )
        for authz, ident in pending
        for kind in ident.challenge_types()
    )
    session.commit()
    return order, authzs


def _replaced(session: Session, account: AcmeAccount, replaces: Any) -> str | None:
    """RFC 9773's `replaces`: the CertID of a certificate of the same customer, or None."""
    if replaces is None:
        return None
    if not isinstance(replaces, str) or len(replaces) > 200:
        raise malformed("replaces is a certificate identifier (RFC 9773)")
    if certificate_by_cert_id(session, replaces).account_id != account.account_id:
        raise malformed("replaces names a certificate this account did not get")
    return replaces


def owned_order(
    session: Session, account: AcmeAccount, order_id: uuid.UUID, *, lock: bool = False
) -> AcmeOrder:
    """One of the account's orders (another's is not found), its state brought up to date."""
    query = select(AcmeOrder).where(
        AcmeOrder.id == order_id, AcmeOrder.acme_account_id == account.id
    )
    order = session.scalars(query.with_for_update() if lock else query).first()
    if order is None:
        raise not_found("order")
    now = utcnow()
    if order.status in (OrderStatus.PENDING, OrderStatus.READY) and order.expires_at <= now:
        order.status = OrderStatus.INVALID.value
        order.error = AcmeProblem("malformed", "the order expired before it was finalized").body()
        session.commit()
    return order


def order_authorizations(session: Session, order_id: uuid.UUID) -> list[AcmeAuthorization]:
    """An order's authorizations, in the order of its identifiers."""
    return list(
        session.scalars(
            select(AcmeAuthorization)
            .where(AcmeAuthorization.order_id == order_id)
            .order_by(AcmeAuthorization.created_at, AcmeAuthorization.id)
        )
    )


def account_orders(session: Session, account: AcmeAccount, limit: int = 1000) -> list[uuid.UUID]:
    """The ids of the account's orders, newest first."""
    return list(
        session.scalars(
            select(AcmeOrder.id)
            .where(AcmeOrder.acme_account_id == account.id)
            .order_by(AcmeOrder.created_at.desc())
            .limit(limit)
        )
    )


def owned_authorization(
    session: Session, account: AcmeAccount, authz_id: uuid.UUID, *, lock: bool = False
) -> AcmeAuthorization:
    """One authorization of the account's orders; not found otherwise."""
    query = (
        select(AcmeAuthorization)
        .join(AcmeOrder, AcmeOrder.id == AcmeAuthorization.order_id)
        .where(AcmeAuthorization.id == authz_id, AcmeOrder.acme_account_id == account.id)
    )
    authz = session.scalars(query.with_for_update(of=AcmeAuthorization) if lock else query).first()
    if authz is None:
        raise not_found("authorization")
    return authz


def authorization_challenges(session: Session, authz_id: uuid.UUID) -> list[AcmeChallenge]:
    """An authorization's challenges, in a stable order."""
    return list(
        session.scalars(
            select(AcmeChallenge)
            .where(AcmeChallenge.authorization_id == authz_id)
            .order_by(AcmeChallenge.type)
        )
    )


def authz_status(authz: AcmeAuthorization, now: datetime) -> str:
    """As shown: a pending or valid authorization past its expiry is expired."""
    if authz.status in (AuthzStatus.PENDING, AuthzStatus.VALID) and authz.expires_at <= now:
        return AuthzStatus.EXPIRED.value
    return authz.status


def deactivate_authorization(
    session: Session, account: AcmeAccount, authz_id: uuid.UUID, payload: dict[str, Any]
) -> AcmeAuthorization:
    """POST {"status": "deactivated"} to an authorization (RFC 8555 section 7.5.2)."""
    if payload.get("status") != AuthzStatus.DEACTIVATED:
        raise malformed('an authorization only takes {"status": "deactivated"}')
    authz = owned_authorization(session, account, authz_id, lock=True)
    if authz.status in (AuthzStatus.PENDING, AuthzStatus.VALID):
        authz.status = AuthzStatus.DEACTIVATED.value
        order = session.get(AcmeOrder, authz.order_id)
        if order is not None and order.status in (OrderStatus.PENDING, OrderStatus.READY):
            order.status = OrderStatus.INVALID.value
            order.updated_at = utcnow()
    session.commit()
    return authz


def owned_challenge(
    session: Session, account: AcmeAccount, challenge_id: uuid.UUID
) -> tuple[AcmeChallenge, AcmeAuthorization]:
    """One challenge of the account's authorizations, locked; not found otherwise."""
    found = session.execute(
        select(AcmeChallenge, AcmeAuthorization)
        .join(AcmeAuthorization, AcmeAuthorization.id == AcmeChallenge.authorization_id)
        .join(AcmeOrder, AcmeOrder.id == AcmeAuthorization.order_id)
        .where(AcmeChallenge.id == challenge_id, AcmeOrder.acme_account_id == account.id)
        .with_for_update(of=(AcmeChallenge, AcmeAuthorization))
    ).first()
    if found is None:
        raise not_found("challenge")
    challenge, authz = found
    return challenge, authz


def respond(
    session: Session,
    account: AcmeAccount,
    challenge_id: uuid.UUID,
    limits: AcmeLimits,
) -> tuple[AcmeChallenge, AcmeAuthorization]:
    """The client says a challenge is ready (RFC 8555 section 7.5.1): queue its check for
    the worker, once; a challenge already processing or settled is returned as it is."""
    challenge, authz = owned_challenge(session, account, challenge_id)
    now = utcnow()
    if challenge.status != ChallengeStatus.PENDING:
        return challenge, authz
    status = authz_status(authz, now)
    if status != AuthzStatus.PENDING:
        raise malformed(f"the authorization is {status}: its challenges cannot be answered")
    refuse_after_failures(session, account, limits, now)
    challenge.status = ChallengeStatus.PROCESSING.value
    challenge.thumbprint = account.thumbprint
    challenge.requested_at = now
    session.commit()
    return challenge, authz
