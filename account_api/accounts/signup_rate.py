"""Sign-ups per client address: each one costs an argon2 hash (tens of milliseconds of
CPU), so one address may make at most SIGNUP_RATE_PER_HOUR an hour (429 with Retry-After
past it). Counted in the database (`schema.rates`), so the limit holds across workers.

The client address is the peer's, or, when the peer is a proxy in TRUSTED_PROXIES, the
address that proxy appended to `X-Forwarded-For` (behind a proxy every client would
otherwise share its address). Entries a client wrote itself are never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from account_api.errors import ApiError
from schema.rates import Window, hit_statement

SCOPE = "signup"
HOUR = timedelta(hours=1)


class TooManySignups(ApiError):
    status, title = 429, "Too Many Requests"


def _in(address: str, networks: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[str]) -> str:
    """Who is signing up: the peer, or the nearest untrusted hop a trusted proxy reports."""
    address = peer or "unknown"
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    while _in(address, trusted) and hops:
        address = hops.pop()  # appended by the proxy we trust: walk back one hop
    return address


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
