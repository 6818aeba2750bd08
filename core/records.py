"""What every change of a certificate writes in its transaction: the audit row, the event,
and, when the CRL changes with it, the bump of the issuer's CRL revision."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core import queries
from core.queries import CertificateRow
from core.statements import Transaction
from schema.base import utcnow
from schema.certificates import CRL_SLOTS, Status, status_of
from schema.events import EventType, event_values


@dataclass(frozen=True)
class Changed:
    """A certificate as it is after an operation, and whether the operation changed it."""

    certificate: CertificateRow
    changed: bool


class Change(enum.Enum):
    """A change of a certificate: its history action and its event type."""

    ISSUED = ("issued", EventType.CERTIFICATE_CREATED)
    RELEASED = ("released", EventType.CERTIFICATE_ACTIVATED)
    HELD = ("held", EventType.CERTIFICATE_DEACTIVATED)
    REVOKED = ("revoked", EventType.CERTIFICATE_REVOKED)
    # An admin took over a hold its owner placed: the state is unchanged, so no event.
    ADMIN_HOLD = ("admin_hold", None)

    @property
    def action(self) -> str:
        """The history row's `action`."""
        return str(self.value[0])

    @property
    def event(self) -> EventType | None:
        """The webhook event's type (None: the change has none)."""
        event: EventType | None = self.value[1]
        return event


class EventSubject(Protocol):
    """What a certificate event's `data` is made of: a certificate row, or the columns a
    worker's UPDATE ... RETURNING gave back (expiry notices)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def account_id(self) -> uuid.UUID: ...
    @property
    def serial_number(self) -> str: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def revocation_reason(self) -> str | None: ...
    @property
    def not_after(self) -> datetime: ...


def certificate_event_data(cert: EventSubject, now: datetime | None = None) -> dict[str, Any]:
    """The `data` of a certificate webhook event, as the contract lists it."""
    status = status_of(cert.revoked_at, cert.not_after, cert.is_active, now or utcnow())
    data: dict[str, Any] = {
        "certificate_id": str(cert.id),
        "account_id": str(cert.account_id),
        "serial_number": cert.serial_number,
        "is_active": cert.is_active,
        "status": status.value,
    }
    if cert.revocation_reason is not None:
        data["reason"] = cert.revocation_reason
    elif not cert.is_active and status is Status.INACTIVE:
        data["reason"] = "certificateHold"
    return data


def crl_slot(certificate_id: uuid.UUID) -> int:
    """Which of its issuer's change-counter slots a certificate's changes bump."""
    return certificate_id.int % CRL_SLOTS


async def bump_crl_revisions(tx: Transaction, certs: list[CertificateRow]) -> None:
    """Mark the CRLs of these certificates' issuers stale. Call last before commit: it
    locks a counter slot until then."""
    slots = sorted({(cert.issuer_id, crl_slot(cert.id)) for cert in certs})
    for issuer_id, slot in slots:  # in one order, so two transactions cannot deadlock
        await tx.execute(queries.BUMP_CRL_REVISION, issuer=issuer_id, counter=slot)


def history_reason(cert: CertificateRow, change: Change) -> str | None:
    """The reason a history row gives: the revocation's, or certificateHold for a hold."""
    if change is Change.REVOKED:
        return cert.revocation_reason
    return "certificateHold" if change in (Change.HELD, Change.ADMIN_HOLD) else None


async def record_change(
    tx: Transaction,
    cert: CertificateRow,
    change: Change,
    before: Status | None,
    actor_id: uuid.UUID | None,
) -> None:
    """The history row and the event, if it has one, of a change (`cert` as it is after
    the change, at its `updated_at`); the workers are woken once the transaction commits."""
    now = cert.updated_at
    reason = history_reason(cert, change)
    await tx.execute(
        queries.INSERT_HISTORY,
        certificate_id=cert.id,
        action=change.action,
        from_status=before.value if before else None,
        to_status=status_of(cert.revoked_at, cert.not_after, cert.is_active, now).value,
        reason=reason,
        actor_id=actor_id,
        at=now,
    )
    if change.event is None:
        return
    data = certificate_event_data(cert, now)
    await tx.execute(queries.INSERT_EVENT, **event_values(change.event, cert.id, data))
    tx.events_recorded()
