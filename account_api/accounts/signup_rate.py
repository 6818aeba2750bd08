"""Sign-ups per client address: each one costs an argon2 hash (tens of milliseconds of
CPU), so one address may make at most SIGNUP_RATE_PER_HOUR an hour (429 with Retry-After
past it). Counted in the database (`schema.rates`), so the limit holds across workers.

The client address is `account_api.runtime.client()` (the peer, or what a proxy in
TRUSTED_PROXIES reports: `schema.clients`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from account_api.errors import ApiError
from schema.rates import Window, hit_statement

SCOPE = "signup"
HOUR = timedelta(hours=1)


class TooManySignups(ApiError):
    status, title = 429, "Too Many Requests"


def count_signup(session: Session, client: str, per_hour: int, now: datetime) -> None:
    """Count this sign-up of `client`; 429 with Retry-After past `per_hour` this hour."""
    window = Window.around(now, HOUR)
    dialect = session.get_bind().dialect.name
    hit = session.execute(
        hit_statement(dialect), {"scope": SCOPE, "key": client[:64], "window_start": window.start}
    ).one()
    session.commit()
    if hit.hits > per_hour:
        raise TooManySignups(
            f"at most {per_hour} sign-ups an hour from one address; retry later",
            {"Retry-After": str(window.retry_after(now))},
        )
