"""Replay nonces (RFC 8555 section 6.5): good once, in any process, across restarts.

A nonce is made without the database: 16 random bytes and the time it was made, signed with
an HMAC under a key derived from the master key every process shares. A request's nonce is
checked (its exact spelling, signature, age) and then redeemed, once the request's JWS
signature has verified: its insert into `acme_nonces` fails on the primary key if any
process redeemed it before. A nonce is one exact string: base64url without padding, as
made; any other spelling of the same bytes (padding, other unused trailing bits, the base64
alphabet's `+` and `/`, whitespace) is refused before it is decoded, so one nonce is never
stored, and good, under two names. The worker deletes rows past their expiry
(worker/retention.py): a nonce that old is refused by its age, stored or not.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from josepy.b64 import b64decode
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.acme.problems import AcmeProblem
from core.validation import b64url
from schema.acme import AcmeNonce

NONCE_TTL = timedelta(hours=1)
_RANDOM, _STAMP, _TAG = 16, 8, 16
_LENGTH = len(b64url(bytes(_RANDOM + _STAMP + _TAG)))  # 54 characters


def bad_nonce(detail: str) -> AcmeProblem:
    """The answer clients retry once with the fresh nonce it carries."""
    return AcmeProblem("badNonce", detail)


@dataclass(frozen=True)
class Nonces:
    """Makes and checks nonces under one key."""

    key: bytes = field(repr=False)

    @classmethod
    def from_master_key(cls, master_key: bytes) -> Nonces:
        """The nonce key, derived from the master key (never the master key itself)."""
        return cls(hmac.new(master_key, b"tessera acme nonce key", hashlib.sha256).digest())

    def make(self, now: float | None = None) -> str:
        """A fresh nonce."""
        stamp = int(time.time() if now is None else now).to_bytes(_STAMP, "big")
        data = secrets.token_bytes(_RANDOM) + stamp
        return b64url(data + self._tag(data))

    def _tag(self, data: bytes) -> bytes:
        return hmac.new(self.key, data, hashlib.sha256).digest()[:_TAG]

    def expiry(self, nonce: str | None, now: float | None = None) -> datetime:
        """When a nonce this service made stops being good; `badNonce` if it is not one of
        ours, or too old."""
        if not nonce:
            raise bad_nonce("the JWS protected header has no nonce")
        if len(nonce) != _LENGTH:
            raise bad_nonce("the nonce is not one this server made")
        try:
            raw = b64decode(nonce)
        except (binascii.Error, ValueError):
            raise bad_nonce("the nonce is not one this server made") from None
        if b64url(raw) != nonce:  # another spelling of these bytes: not the nonce made
            raise bad_nonce("the nonce is not one this server made")
        data, tag = raw[: _RANDOM + _STAMP], raw[_RANDOM + _STAMP :]
        if len(raw) != _RANDOM + _STAMP + _TAG or not hmac.compare_digest(tag, self._tag(data)):
            raise bad_nonce("the nonce is not one this server made")
        made = int.from_bytes(data[_RANDOM:], "big")
        expires = made + NONCE_TTL.total_seconds()
        if expires <= (time.time() if now is None else now):
            raise bad_nonce("the nonce has expired; use the fresh one in Replay-Nonce")
        return datetime.fromtimestamp(expires, UTC)


def redeem(session: Session, nonces: Nonces, nonce: str | None) -> AcmeNonce:
    """Check a request's nonce and mark it used in the request's transaction (its insert is
    sent at once: a concurrent use of the same nonce waits for this transaction, then fails);
    `badNonce` if it was used before. Called once the request's signature has verified (a
    request nobody can sign spends nothing); a request that fails after this still spends
    it: `spend`, once its transaction is rolled back (`spent` says whether that is
    needed)."""
    expires_at = nonces.expiry(nonce)
    assert nonce is not None
    used = AcmeNonce(nonce=nonce, expires_at=expires_at)
    session.add(used)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise bad_nonce("the nonce was already used; use the fresh one in Replay-Nonce") from None
    return used


def spent(used: AcmeNonce) -> bool:
    """Whether a redeemed nonce's row is still in (or committed by) its session: a rollback
    of its transaction, by a rule that recovered from a conflict, takes it back out."""
    return not inspect(used).transient


def spend(session: Session, nonces: Nonces, nonce: str | None) -> None:
    """Mark a nonce used in a transaction of its own, after its request failed and rolled
    back; nothing if it is already marked (the request committed before failing)."""
    session.add(AcmeNonce(nonce=nonce, expires_at=nonces.expiry(nonce)))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
