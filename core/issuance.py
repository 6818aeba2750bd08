"""Issuance: one call, whoever asks (REST, renewal; ACME and the CLI later).

`issue_certificate` authorizes the account (reading, in the same round trip, the domain
authorizations that may cover the request's names), answers a repeated Idempotency-Key
with the first result, checks the request and who may have its names, signs, and stores
the certificate, its sealed key, its history row, its event and the Idempotency-Key in
one transaction. A renewal (`Renewal`) adds to that transaction the certificate it renews,
locked and checked again, and revoked as superseded when asked.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import IntegrityError

from certificate_api.authority.service import IssuingCa
from certificate_api.pki.keypool import KeyPool
from certificate_api.pki.sealing import Keyring, seal
from core import queries
from core.actors import Actor
from core.errors import Conflict, Unauthorized
from core.idempotency import Idempotency, remember, replay
from core.keys import refuse_blocked
from core.name_check import Held, NameRules
from core.orders import Issued, IssueOrder, IssueRequest, Limits, makes_slow_key, prepare, sign
from core.private_keys import private_key_pem
from core.queries import CertificateRow
from core.rates import IssuanceRate, SlowKeyGate
from core.records import Change, bump_crl_revisions, record_change
from core.revocation import Revocation, revoke_row
from core.statements import Database, Transaction
from schema.base import utcnow
from schema.tokens import TokenClaims

ISSUE = "issue"  # the operations an Idempotency-Key is remembered under
RENEW = "renew"
SUPERSEDED = "superseded"  # the reason a renewal revokes the certificate it renews with


@dataclass(frozen=True)
class IssuerContext:
    """What issuing needs from the running service: its database, the issuing CA, the
    master keys that seal stored private keys, the key pool, the operator's settings, the
    rules of who may have which names, the issuance rate per account and the process's bound
    on keys made on demand."""

    db: Database
    ca: IssuingCa
    keyring: Keyring
    key_pool: KeyPool
    public_base_url: str
    limits: Limits
    idempotency_ttl: timedelta
    names: NameRules
    rate: IssuanceRate
    slow_keys: SlowKeyGate


@dataclass(frozen=True)
class Renewal:
    """The certificate an issuance renews (as read before it, by its owner), and whether to
    revoke it as superseded in the new certificate's transaction."""

    previous: CertificateRow
    revoke_previous: bool

    def fields(self) -> dict[str, object]:
        """What a renewal adds to the request an Idempotency-Key is remembered with."""
        return {"renews": str(self.previous.id), "revoke_previous": self.revoke_previous}


def refuse_unrenewable(cert: CertificateRow) -> None:
    """A revoked certificate, or one on an administrator's hold, is not renewed (409)."""
    if cert.revoked_at is not None:
        raise Conflict("a revoked certificate cannot be renewed")
    if not cert.is_active and cert.held_by_admin:
        raise Conflict("the certificate is on an administrator's hold: it cannot be renewed")


@dataclass(frozen=True)
class _Checked:
    """An order that passed every check before signing: who asked, the domain
    authorizations to re-check when storing (None: nothing to re-check), and the
    certificate it renews, if any."""

    actor: Actor
    order: IssueOrder
    held: Held | None
    renewal: Renewal | None


@dataclass(frozen=True)
class IssueResult:
    """The certificate; its private key when the service holds it (a first answer and its
    replays carry it); and whether this call created it (false for a replay)."""

    certificate: CertificateRow
    private_key_pem: str | None
    created: bool


async def issue_certificate(
    issuer: IssuerContext,
    caller: TokenClaims,
    request: IssueRequest,
    idempotency_key: str | None = None,
    renewal: Renewal | None = None,
) -> IssueResult:
    """Issue a certificate for the caller's account, or replay the first answer to a
    repeated Idempotency-Key. With `renewal`, the new certificate renews that one (see
    `core.renewal`)."""
    db = issuer.db
    # Checked before anything else (a deleted account or an old token is refused whatever
    # it asks); storing checks again under a lock, for an account deleted while this
    # request signs. The same round trip reads the authorizations that may cover the names,
    # and counts this call against the account's issuance rate.
    actor, grants = await issuer.names.authorize(db, caller, request, issuer.rate)
    request_fields = dataclasses.asdict(request)
    if renewal is not None:
        request_fields |= renewal.fields()
    idem = Idempotency.of(idempotency_key, request_fields, issuer.idempotency_ttl)
    first = await replay(db, actor.id, ISSUE if renewal is None else RENEW, idem)
    if first is not None:
        return await _answer(issuer, first, None, created=False)
    if renewal is not None:  # checked again, locked, when storing
        refuse_unrenewable(renewal.previous)
    order = prepare(request, issuer.limits)
    # Checks that read the database for this account and order (which names it may have,
    # how fast it may issue) belong here: after the order is known, before anything is signed.
    held = issuer.names.check(order, grants)
    if order.csr_public_key is not None:  # a fresh key cannot be blocked
        await refuse_blocked(db, order.csr_public_key, actor.id)
    issued = await _sign(issuer, order)
    return await _store(issuer, _Checked(actor, order, held, renewal), issued, idem)


async def _sign(issuer: IssuerContext, order: IssueOrder) -> Issued:
    """Sign, on this event loop: a fraction of a millisecond. Making an RSA key is not, so
    when the pool has none ready, the signing (with the key's making) goes to a thread, as
    many at once as the process's bound allows (`Busy` past it)."""
    signing = functools.partial(sign, order, issuer.ca, issuer.public_base_url, issuer.key_pool)
    if makes_slow_key(order, issuer.key_pool):
        return await issuer.slow_keys.run(signing)
    return signing()


def _row(checked: _Checked, issued: Issued) -> CertificateRow:
    """The certificate's row as it will be stored."""
    now = utcnow()
    order, renewal = checked.order, checked.renewal
    return CertificateRow(
        id=issued.id,
        account_id=checked.actor.id,
        issuer_id=issued.issuer_id,
        serial_number=issued.serial_number,
        common_name=order.common_name,
        dns_names=list(order.dns_names),
        ip_addresses=[str(ip) for ip in order.ip_addresses],
        key_type=issued.key_type.value,
        is_active=order.is_active,
        held_at=None if order.is_active else now,
        held_by_admin=False,  # a hold asked for at issuance is the owner's
        revoked_at=None,
        revocation_reason=None,
        not_before=issued.certificate.not_valid_before_utc,
        not_after=issued.certificate.not_valid_after_utc,
        certificate_pem=issued.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        created_at=now,
        updated_at=now,
        renewed_from=renewal.previous.id if renewal is not None else None,
        expiry_notified_at=None,
        has_private_key=issued.private_key_pem is not None,
    )


async def _store(
    issuer: IssuerContext, checked: _Checked, issued: Issued, idem: Idempotency
) -> IssueResult:
    """Store a signed certificate with its sealed key, history, event and idempotency record,
    in one transaction. A concurrent request with the same Idempotency-Key that committed
    first wins, and its certificate is the answer instead. Refused if the account was
    deleted meanwhile, or a domain authorization it relies on was deleted or expired."""
    actor, order, held = checked.actor, checked.order, checked.held
    operation = ISSUE if checked.renewal is None else RENEW
    cert = _row(checked, issued)
    try:
        async with issuer.db.transaction() as tx:
            # Sent together, read once at the end: one round trip before the commit.
            account = await tx.start(queries.LOCK_ACCOUNT, account_id=actor.id)
            # Share-locked: a DELETE of one waits for this commit, or this sees it gone.
            names = await tx.start(held.query, **held.params()) if held is not None else None
            superseded = await _lock_renewed(tx, checked.renewal)
            await _insert(tx, issuer.keyring, cert, issued)
            await remember(tx, actor.id, operation, idem, (cert.id, 201))
            await record_change(tx, cert, Change.ISSUED, None, actor.id)
            stale = [cert] if not order.is_active else []  # issued on hold: on the CRL
            revoked = None
            if superseded is not None:  # the one revocation path, in this transaction
                old, revoked = await revoke_row(
                    tx, superseded, Revocation(SUPERSEDED), actor.id, utcnow()
                )
                stale.append(old)
            if stale:
                await bump_crl_revisions(tx, stale)
            if revoked is not None and await revoked.one() is None:  # a concurrent revocation
                raise Conflict("a revoked certificate cannot be renewed")
            locked = await account.one()
            if locked is None or locked.deleted_at is not None:
                raise Unauthorized()  # rolls all of it back
            if names is not None and held is not None and not held.holds(await names.one()):
                raise held.gone()
    except IntegrityError:
        winner = await replay(issuer.db, actor.id, operation, idem)
        if winner is None:
            raise  # not an idempotency race (a serial collision): let it surface
        return await _answer(issuer, winner, None, created=False)
    key_pem = issued.private_key_pem.decode() if issued.private_key_pem is not None else None
    return await _answer(issuer, cert, key_pem, created=True)


async def _lock_renewed(tx: Transaction, renewal: Renewal | None) -> CertificateRow | None:
    """The certificate a renewal renews, locked in the new one's transaction and checked
    again (revoked or held by an administrator meanwhile: 409); returned when it is to be
    revoked as superseded."""
    if renewal is None:
        return None
    row = await tx.one(queries.LOCK_BY_ID, certificate_id=renewal.previous.id)
    if row is None:  # certificates are never deleted while their account exists
        raise Conflict("the certificate to renew is gone")
    refuse_unrenewable(row)
    return row if renewal.revoke_previous else None


async def _insert(tx: Transaction, keyring: Keyring, cert: CertificateRow, issued: Issued) -> None:
    """The certificate row, and its private key sealed to its id when the service made it."""
    columns = cert._asdict()
    del columns["has_private_key"]
    await tx.execute(queries.INSERT_CERTIFICATE, **columns)
    if issued.private_key_pem is not None:
        sealed = seal(keyring, issued.private_key_pem, issued.id.bytes)
        await tx.execute(
            queries.INSERT_KEY,
            certificate_id=issued.id,
            key_id=sealed.key_id,
            nonce=sealed.nonce,
            ciphertext=sealed.ciphertext,
            created_at=cert.created_at,
        )


async def _answer(
    issuer: IssuerContext, cert: CertificateRow, key_pem: str | None, *, created: bool
) -> IssueResult:
    """The result; a replay's private key is unsealed again from its row."""
    if key_pem is None and cert.has_private_key:
        key_pem = await private_key_pem(issuer.db, issuer.keyring, cert.id)
    return IssueResult(cert, key_pem, created)
