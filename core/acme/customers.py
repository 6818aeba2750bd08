"""What deleting a customer does to its ACME accounts (the account service calls this; it
imports nothing of the certificate service)."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from schema.acme import AcmeAccount, AcmeAccountStatus
from schema.base import utcnow


def deactivate_customer_accounts(session: Session, account_id: uuid.UUID) -> None:
    """The customer is being deleted: its ACME accounts stop acting for it, for good (the
    caller's transaction commits it)."""
    session.execute(
        update(AcmeAccount)
        .where(AcmeAccount.account_id == account_id)
        .values(status=AcmeAccountStatus.DEACTIVATED.value, updated_at=utcnow())
    )
