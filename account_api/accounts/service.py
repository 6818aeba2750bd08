"""Account rules: sign-up, authentication, visibility and deletion. No Flask here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from account_api.auth import throttle
from account_api.auth.passwords import Passwords
from account_api.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from account_api.settings import AccountSettings
from core import sessions
from core.acme.customers import deactivate_customer_accounts
from core.revocation import revoke_account_certificates
from schema.accounts import Account, Role
from schema.base import rfc3339, utcnow
from schema.events import EventType, record_event
from schema.tokens import TokenClaims

BAD_CREDENTIALS = "incorrect email or password"


def email_key(email: str) -> str:
    """The case-insensitive identity of an email address."""
    return email.strip().lower()


def live_account_by_email(session: Session, email: str) -> Account | None:
    """The account that currently owns this email, if any."""
    return session.scalars(
        select(Account).where(Account.email_key == email_key(email), Account.deleted_at.is_(None))
    ).first()


@dataclass(frozen=True)
class NewAccount:
    """What signing up gives: email, password and name (admins are made by operators)."""

    email: str
    password: str
    name: str
    role: Role = Role.CUSTOMER


@dataclass(frozen=True)
class Login:
    """A login attempt (or a password change's check of the current password): the
    credentials, and the client address it came from."""

    email: str
    password: str
    client: str
    new_password: str = ""


def create_account(session: Session, passwords: Passwords, new: NewAccount) -> Account:
    """Create an account; 409 when the email is taken in any letter case."""
    if live_account_by_email(session, new.email) is not None:
        raise Conflict("an account with this email already exists")
    account = Account(
        id=uuid.uuid4(),
        email=new.email.strip(),
        email_key=email_key(new.email),
        name=new.name,
        password_hash=passwords.hash(new.password),
        role=new.role,
    )
    session.add(account)
    try:
        session.commit()
    except IntegrityError:
        # Two sign-ups raced past the check: the unique index decided.
        session.rollback()
        raise Conflict("an account with this email already exists") from None
    return account


def login_limits(settings: AccountSettings) -> throttle.Limits:
    """The throttle's limits from settings."""
    return throttle.Limits(
        window=timedelta(seconds=settings.login_window_seconds),
        per_email_and_client=settings.login_max_failures,
        per_client=settings.login_max_failures_per_client,
    )


def _reserve_attempt(session: Session, key: str, client: str, limits: throttle.Limits) -> None:
    try:
        throttle.reserve(session, key, client, utcnow(), limits)
    except throttle.Throttled as exc:
        raise TooManyRequests(
            "too many failed attempts; try again later", {"Retry-After": str(exc.retry_after)}
        ) from None


def authenticate(
    session: Session, passwords: Passwords, limits: throttle.Limits, login: Login
) -> Account:
    """The account these credentials open, or the same 401 whatever was wrong; 429 if throttled."""
    email, password, client = login.email, login.password, login.client
    key = email_key(email)
    # Counted as a failure before the password is checked (see throttle.py); while
    # throttled, even the right password waits, or the throttle would be an oracle.
    _reserve_attempt(session, key, client, limits)
    account = live_account_by_email(session, email)
    if account is None:
        passwords.burn(password)
        ok, new_hash = False, None
    else:
        ok, new_hash = passwords.verify_and_update(password, account.password_hash)
    if not ok or account is None:
        session.rollback()
        raise Unauthorized(BAD_CREDENTIALS)
    if new_hash is not None:
        account.password_hash = new_hash
    throttle.succeeded(session, key, client)
    session.commit()
    return account


def account_for_token(session: Session, claims: TokenClaims) -> Account:
    """The live account a verified token names; a deleted account's tokens are refused, and
    so are tokens minted before its last sign-out or password change."""
    account = session.get(Account, claims.account_id)
    if account is None or account.is_deleted or not claims.is_current(account.token_generation):
        raise Unauthorized()
    return account


def _retire_tokens(account: Account) -> None:
    # Computed by the database, so two concurrent sign-outs both count.
    account.token_generation = Account.token_generation + 1


def sign_out_everywhere(session: Session, account: Account) -> None:
    """Every token of the account issued up to now is refused from now on, by both services."""
    _retire_tokens(account)
    session.commit()


def change_password(
    session: Session,
    passwords: Passwords,
    limits: throttle.Limits,
    account: Account,
    change: Login,
) -> None:
    """Set a new password if the current one is right (403 otherwise), retiring every token.

    Wrong current passwords count as failed logins, so a stolen token cannot be used to
    guess the password faster than the login form allows.
    """
    current, new, client = change.password, change.new_password, change.client
    _reserve_attempt(session, account.email_key, client, limits)
    ok, _ = passwords.verify_and_update(current, account.password_hash)
    if not ok:
        session.rollback()
        raise Forbidden("the current password is not correct")
    account.password_hash = passwords.hash(new)
    _retire_tokens(account)
    throttle.succeeded(session, account.email_key, client)
    session.commit()


def get_visible(session: Session, account_id: uuid.UUID, actor: Account) -> Account:
    """An account the actor may see: itself, or any live one for an admin; else 404."""
    if actor.id != account_id and actor.role is not Role.ADMIN:
        raise NotFound("no such account")
    account = session.get(Account, account_id)
    if account is None or account.is_deleted:
        raise NotFound("no such account")
    return account


def delete_account(
    session: Session,
    account: Account,
    actor_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> None:
    """Soft-delete: the row stays for the audit trail, the email is free, an event goes out.

    In the same transaction every certificate of the account is revoked with
    `cessationOfOperation` and its stored private key destroyed (the row, not a flag), and
    its ACME accounts are deactivated.
    """
    moment = now or utcnow()
    # Lock the row: a concurrent issuance (its FOR SHARE) waits, then sees it deleted. NO KEY
    # UPDATE, so inserts that merely reference the account (foreign keys) are not blocked.
    session.refresh(account, with_for_update={"key_share": True})
    if account.is_deleted:
        raise NotFound("no such account")
    account.deleted_at = moment
    # The one revocation of the core, run on this session inside this transaction.
    tx = sessions.SessionTransaction(session)
    sessions.run(
        revoke_account_certificates(tx, account.id, "cessationOfOperation", actor_id, moment)
    )
    deactivate_customer_accounts(session, account.id)
    record_event(
        session,
        EventType.ACCOUNT_DELETED,
        account.id,
        {"account_id": str(account.id), "email": account.email, "deleted_at": rfc3339(moment)},
    )
    session.commit()


def make_admin(
    session: Session, passwords: Passwords, email: str, password: str | None, name: str
) -> Account:
    """Promote the account with this email to admin, creating it if a password is given."""
    account = live_account_by_email(session, email)
    if account is None:
        if password is None:
            raise NotFound("no account with this email; give a password to create one")
        return create_account(session, passwords, NewAccount(email, password, name, Role.ADMIN))
    account.role = Role.ADMIN
    session.commit()
    return account
