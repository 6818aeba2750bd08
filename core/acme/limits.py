"""ACME's per-account limits: new orders and failed validations per clock hour, counted in
the database (`schema.rates`) per customer account, so they hold across its ACME accounts,
processes and restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.acme.problems import rate_limited
from schema.acme import AcmeAccount
from schema.rates import RateCounter, Window, hit_statement

HOUR = timedelta(hours=1)
ORDERS_SCOPE = "acme-orders"
FAILURES_SCOPE = "acme-failed"


@dataclass(frozen=True)
class AcmeLimits:
    """The operator's per-account limits (per customer account: all its ACME accounts)."""

    orders_per_hour: int
    failed_validations_per_hour: int


def count_hit(session: Session, scope: str, key: str, now: datetime) -> tuple[int, Window]:
    """One hit of an hourly counter; its rank in the hour, and the hour."""
    window = Window.around(now, HOUR)
    dialect = session.get_bind().dialect.name
    hits = session.execute(
        hit_statement(dialect), {"scope": scope, "key": key, "window_start": window.start}
    ).one()
    return int(hits.hits), window


def refuse_after_failures(
    session: Session, account: AcmeAccount, limits: AcmeLimits, now: datetime
) -> None:
    """`rateLimited` once the customer's validations failed too often this hour."""
    window = Window.around(now, HOUR)
    failed = session.scalar(
        select(RateCounter.count).where(
            RateCounter.scope == FAILURES_SCOPE,
            RateCounter.key == str(account.account_id),
            RateCounter.window_start == window.start,
        )
    )
    if failed is not None and failed >= limits.failed_validations_per_hour:
        raise rate_limited(
            f"{failed} failed validations this hour (at most "
            f"{limits.failed_validations_per_hour}); fix the challenge set-up, then retry",
            window.retry_after(now),
        )
