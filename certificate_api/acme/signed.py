"""A verified ACME request (RFC 8555 section 6.2): its flattened JWS parsed and its nonce's
form checked on the event loop; then, in one thread hop with one session, its signer found
(a `kid`'s account, or a `jwk` where the resource takes one) and its signature verified,
then its nonce redeemed and its `url` checked, before the route's rule runs in the same
transaction. A request whose signature does not verify spends no nonce: whoever sees a
client's unused nonce cannot burn it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import Request
from fastapi.responses import Response
from josepy.jwk import JWK
from sqlalchemy.orm import Session

from certificate_api.acme.shapes import Urls
from certificate_api.runtime import Runtime
from core.acme import accounts, jws, nonces
from core.acme.jws import load_jwk
from core.acme.problems import AcmeProblem, malformed, not_found, unauthorized
from schema.acme import AcmeAccount

T = TypeVar("T")
JSON = "application/json"


@dataclass(frozen=True)
class Signed:
    """A verified request: its JWS, the signer's account (None for a `jwk` request) and
    key."""

    jws: jws.Jws
    account: AcmeAccount | None
    key: JWK

    @property
    def acting(self) -> AcmeAccount:
        """The account, for routes that need one (a `kid` request)."""
        if self.account is None:
            raise malformed("this resource takes a JWS with kid (an account URL), not jwk")
        return self.account


def urls_of(runtime: Runtime) -> Urls:
    """The ACME URLs, from PUBLIC_BASE_URL."""
    return Urls(runtime.settings.public_base_url)


def _account_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise AcmeProblem("accountDoesNotExist", "no ACME account has this URL") from None


def resource_id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(what) from None


async def signed(
    runtime: Runtime,
    request: Request,
    rule: Callable[[Session, Signed], T],
    *,
    jwk: bool = False,
) -> T:
    """Check the JWS of a POST and run `rule` on it: the form and the nonce's here; then, in
    a thread with one session, the signer (a `kid`'s account; a `jwk` only where the
    resource takes one) and the signature; then the nonce (redeemed in the rule's
    transaction, and spent on its own if the rule fails) and the `url`."""
    message = jws.parse(jws.loads(await request.body(), "the request body"))
    expected = urls_of(runtime).of(request.url.path)
    if (message.jwk is None) == (message.kid is None):
        raise malformed("the JWS protected header carries exactly one of jwk and kid")
    if message.jwk is not None and not jwk:
        raise malformed("this resource takes a JWS with kid (an account URL), not jwk")
    runtime.nonces.expiry(message.nonce)  # a nonce never made here is refused at once
    account_prefix = urls_of(runtime).account("")

    def run() -> T:
        with runtime.sessions() as session:
            account, key = signer(session)
            jws.verify(message, key)
            used = nonces.redeem(session, runtime.nonces, message.nonce)
            try:
                if message.url != expected:
                    raise unauthorized(f"the JWS url must be {expected}")
                result = rule(session, Signed(message, account, key))
                session.commit()  # the nonce, when the rule left nothing else to commit
            except Exception:
                session.rollback()
                nonces.spend(session, runtime.nonces, message.nonce)
                raise
            if not nonces.spent(used):  # the rule rolled back to recover from a conflict
                nonces.spend(session, runtime.nonces, message.nonce)
            return result

    def signer(session: Session) -> tuple[AcmeAccount | None, JWK]:
        """The account (None for a `jwk` request) and the key that must have signed."""
        account = None
        if message.kid is not None:
            if not message.kid.startswith(account_prefix):
                raise AcmeProblem("accountDoesNotExist", "the kid is not an account URL")
            account = accounts.acting(
                session, _account_id(message.kid.removeprefix(account_prefix))
            )
            key = load_jwk(account.jwk)
        else:
            assert message.jwk is not None
            key = jws.account_key(message.jwk)
        return account, key

    return await anyio.to_thread.run_sync(run)


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=JSON, headers=headers)
