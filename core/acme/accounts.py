"""ACME accounts: external account binding keys, registration, lookup by key or URL,
contact update, deactivation and key rollover (RFC 8555 section 7.3).

Registration needs an external account binding (RFC 8555 section 7.3.4): a customer makes
a key with its bearer token (`make_eab_key`); the client signs its account key with it.
The key is good for one account and `ACME_EAB_TTL_HOURS`; it is stored sealed under the
master key. The ACME account then acts for that customer.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from josepy.errors import DeserializationError
from josepy.jwk import JWK
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certificate_api.pki.sealing import Keyring, SealedKey, seal, unseal
from core.acme import jws
from core.acme.jws import load_jwk
from core.acme.problems import AcmeProblem, malformed, unauthorized
from core.actors import actor_of
from core.queries import AccountRow
from core.validation import b64url
from schema.accounts import Account
from schema.acme import AcmeAccount, AcmeAccountStatus, AcmeEabKey
from schema.base import utcnow
from schema.tokens import TokenClaims

EAB_KEY_BYTES = 32
MAX_CONTACTS = 10
_MAILTO = re.compile(r"mailto:[^@\s,?]+@[^@\s,?]+\.[^@\s,?]+", re.IGNORECASE)  # fullmatch


@dataclass(frozen=True)
class EabKey:
    """What a customer is given once: the key id and the HMAC key, base64url."""

    key_id: str
    hmac_key: str
    expires_at: datetime


def _live_customer(session: Session, caller: TokenClaims) -> Account:
    """The caller's account, judged as every bearer-token request is (`actor_of`)."""
    account = session.get(Account, caller.account_id)
    row = None if account is None else AccountRow(account.role, account.deleted_at,
                                                  account.token_generation)  # fmt: skip
    actor_of(row, caller)
    assert account is not None
    return account


def make_eab_key(session: Session, keyring: Keyring, caller: TokenClaims, ttl: timedelta) -> EabKey:
    """A new external account binding key for the caller's account, sealed at rest."""
    account = _live_customer(session, caller)
    key_id = b64url(secrets.token_bytes(16))
    mac_key = secrets.token_bytes(EAB_KEY_BYTES)
    sealed = seal(keyring, mac_key, key_id.encode())
    now = utcnow()
    session.add(
        AcmeEabKey(
            key_id=key_id,
            account_id=account.id,
            sealed_with=sealed.key_id,
            nonce=sealed.nonce,
            ciphertext=sealed.ciphertext,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.commit()
    return EabKey(key_id, b64url(mac_key), now + ttl)


def by_key(session: Session, key: JWK) -> AcmeAccount | None:
    """The account registered with this key, if any."""
    return session.scalars(
        select(AcmeAccount).where(AcmeAccount.thumbprint == jws.thumbprint(key))
    ).first()


def acting(session: Session, account_id: uuid.UUID, *, lock: bool = False) -> AcmeAccount:
    """The account a `kid` names, if it may act: `accountDoesNotExist` when there is none,
    `unauthorized` when it (or the customer it acts for) was deactivated or deleted."""
    query = select(AcmeAccount, Account.deleted_at).join(
        Account, Account.id == AcmeAccount.account_id
    )
    query = query.where(AcmeAccount.id == account_id)
    found = session.execute(query.with_for_update(of=AcmeAccount) if lock else query).first()
    if found is None:
        raise AcmeProblem("accountDoesNotExist", "no ACME account has this URL")
    account, deleted_at = found
    if account.status != AcmeAccountStatus.VALID or deleted_at is not None:
        raise unauthorized(f"the ACME account is {AcmeAccountStatus.DEACTIVATED.value}")
    return account


def _contacts(value: Any) -> list[str]:
    """A contact list: `mailto:` addresses only (RFC 8555 section 7.3)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise malformed("contact is a list of URLs")
    if len(value) > MAX_CONTACTS:
        raise AcmeProblem("invalidContact", f"at most {MAX_CONTACTS} contacts")
    for contact in value:
        if not contact.lower().startswith("mailto:"):
            raise AcmeProblem("unsupportedContact", "only mailto: contacts are supported")
        if not _MAILTO.fullmatch(contact):
            raise AcmeProblem("invalidContact", f"{contact!r} is not a mailto: address")
    return list(value)


def register(
    session: Session,
    keyring: Keyring,
    request: jws.Jws,
    key: JWK,
) -> tuple[AcmeAccount, bool]:
    """newAccount: the account of this key (returns it, and False), or a new one bound by
    the request's external account binding (True). Commits."""
    payload = request.json() or {}
    existing = by_key(session, key)
    if existing is not None:
        if existing.status != AcmeAccountStatus.VALID:
            raise unauthorized(f"the ACME account of this key is {existing.status}")
        return existing, False
    if payload.get("onlyReturnExisting") is True:
        raise AcmeProblem("accountDoesNotExist", "no ACME account has this key")
    contact = _contacts(payload.get("contact"))
    binding = payload.get("externalAccountBinding")
    if binding is None:
        raise AcmeProblem(
            "externalAccountRequired",
            "this CA needs an external account binding: make one with POST /api/acme/eab",
        )
    eab = _bound_key(session, keyring, binding, request.url, key)
    now = utcnow()
    account = AcmeAccount(
        id=uuid.uuid4(),
        account_id=eab.account_id,
        thumbprint=jws.thumbprint(key),
        jwk=jws.public_jwk(key),
        status=AcmeAccountStatus.VALID.value,
        contact=contact,
        eab_key_id=eab.key_id,
        created_at=now,
        updated_at=now,
    )
    # Taken only if still unused, as the update runs: without row locks (SQLite) the lock
    # `_bound_key` took holds nothing, and keys racing for one binding would all register.
    taken = session.scalar(
        update(AcmeEabKey)
        .where(AcmeEabKey.key_id == eab.key_id, AcmeEabKey.used_at.is_(None))
        .values(used_at=now)
        .returning(AcmeEabKey.key_id)
        .execution_options(synchronize_session=False)
    )
    if taken is None:
        session.rollback()
        raise unauthorized("this external account binding key was already used")
    session.add(account)
    try:
        session.commit()
    except IntegrityError:  # the same key registered at the same moment: that one it is
        session.rollback()
        twin = by_key(session, key)
        if twin is None:
            raise
        return twin, False
    return account, True


def _bound_key(
    session: Session, keyring: Keyring, binding: Any, url: str | None, key: JWK
) -> AcmeEabKey:
    """The external account binding (RFC 8555 section 7.3.4), checked: a JWS by the EAB key
    over the account key, for this URL; the EAB key unused, unexpired, its customer live.
    Returns the EAB key, locked."""
    inner = jws.parse(binding, algorithms=jws.EAB_ALGORITHMS)
    if inner.url != url:
        raise malformed("the external account binding's url differs from the request's")
    if "nonce" in inner.protected:
        raise malformed("the external account binding must not carry a nonce")
    try:
        signed_key = load_jwk(json.loads(inner.payload))
    except (ValueError, TypeError, DeserializationError, RecursionError):
        raise malformed("the external account binding's payload is not a JWK") from None
    if jws.thumbprint(signed_key) != jws.thumbprint(key):
        raise malformed("the external account binding signs another key than the account's")
    eab = session.scalars(
        select(AcmeEabKey).where(AcmeEabKey.key_id == str(inner.kid)).with_for_update()
    ).first()
    if eab is None:
        raise unauthorized("unknown external account binding key id")
    sealed = SealedKey(eab.sealed_with, eab.nonce, eab.ciphertext)
    jws.verify_mac(inner, unseal(keyring, sealed, eab.key_id.encode()))
    if eab.used_at is not None:
        raise unauthorized("this external account binding key was already used")
    if eab.expires_at <= utcnow():
        raise unauthorized("this external account binding key has expired; make a new one")
    customer = session.get(Account, eab.account_id)
    if customer is None or customer.deleted_at is not None:
        raise unauthorized("the account this binding was made for is deleted")
    return eab


def update_account(session: Session, account: AcmeAccount, payload: dict[str, Any]) -> None:
    """POST to the account URL: new contacts, or `status: deactivated` (for good). Commits.
    Any other status is no change: certbot's update sends the whole account back."""
    status = payload.get("status")
    # RFC 8555 section 7.3.2: any other status is ignored (clients echo the account back).
    if status is not None and not isinstance(status, str):
        raise malformed("status is a string")
    if "contact" in payload:
        account.contact = _contacts(payload["contact"])
    if status == AcmeAccountStatus.DEACTIVATED:
        account.status = AcmeAccountStatus.DEACTIVATED.value
    account.updated_at = utcnow()
    session.commit()


def change_key(
    session: Session, account: AcmeAccount, account_url: str, outer: jws.Jws
) -> AcmeAccount | str:
    """keyChange (RFC 8555 section 7.3.5): the outer JWS (verified, by the old key) carries
    an inner JWS by the new key over {account, oldKey}. Returns the account with its new
    key, committed; or the URL id of another account that already has the new key."""
    inner = jws.parse(outer.json())
    if inner.jwk is None or inner.kid is not None:
        raise malformed("the inner JWS of a key change carries the new key as jwk, not a kid")
    if inner.url != outer.url:
        raise malformed("the inner JWS's url differs from the outer's")
    new_key = jws.account_key(inner.jwk)
    jws.verify(inner, new_key)
    payload = inner.json() or {}
    if payload.get("account") != account_url:
        raise malformed("the key change names another account than the one signing it")
    old = payload.get("oldKey")
    try:
        old_key = load_jwk(old)
    except (DeserializationError, ValueError, TypeError):
        raise malformed("oldKey is not a JWK") from None
    if jws.thumbprint(old_key) != account.thumbprint:
        raise malformed("oldKey is not the account's current key")
    taken = by_key(session, new_key)
    if taken is not None:
        return str(taken.id)
    account.thumbprint = jws.thumbprint(new_key)
    account.jwk = jws.public_jwk(new_key)
    account.updated_at = utcnow()
    try:
        session.commit()
    except IntegrityError:  # registered by someone else meanwhile
        session.rollback()
        taken = by_key(session, new_key)
        if taken is None:
            raise
        return str(taken.id)
    return account


def claims_of(account_id: uuid.UUID) -> TokenClaims:
    """The credential an ACME account acts with in the core's calls: its customer's
    account, valid whatever tokens the customer signed out (an ACME account's key is its own
    credential; deleting the customer deactivates it)."""
    return TokenClaims(account_id, "acme", float("inf"), generation=2**62)
