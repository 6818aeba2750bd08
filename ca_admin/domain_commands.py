"""`ca-admin domains`: grant, list and revoke domain authorizations without a challenge."""

from __future__ import annotations

import uuid

import click


def _sessions() -> tuple[object, object]:
    from schema.db import make_engine, make_sessionmaker
    from schema.settings import CommonSettings

    settings = CommonSettings()
    return settings, make_sessionmaker(make_engine(settings.effective_database_url))


@click.group()
def domains() -> None:
    """Who may have which names: operators' grants and revocations."""


@domains.command()
@click.argument("email")
@click.argument("name")
@click.option("--include-subdomains", is_flag=True, help="every name under NAME too (wildcards)")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="default: the setting")
def grant(email: str, name: str, include_subdomains: bool, days: int | None) -> None:
    """Authorize the account with EMAIL for NAME (a DNS name or IP address), no challenge."""
    from sqlalchemy.orm import Session, sessionmaker

    from account_api.accounts.service import live_account_by_email
    from core import domains as rules
    from core.errors import DomainError
    from core.policy import NamePolicy
    from schema.base import rfc3339
    from schema.settings import CommonSettings

    settings, sessions = _sessions()
    assert isinstance(settings, CommonSettings) and isinstance(sessions, sessionmaker)
    policy = NamePolicy.parse(settings.name_policy_allow, settings.name_policy_deny)
    try:
        wanted = rules.subject(name, include_subdomains, policy)
    except DomainError as exc:
        raise click.ClickException(exc.detail) from None
    session: Session
    with sessions() as session:
        account = live_account_by_email(session, email)
        if account is None:
            raise click.ClickException(f"no account with email {email}")
        made = rules.grant(session, account, wanted, days or settings.domain_authorization_days)
        session.commit()
        scope = " and every name under it" if wanted.include_subdomains else ""
        click.echo(
            f"{made.id}: {email} may have {wanted.name}{scope} until {rfc3339(made.expires_at)}"
        )


@domains.command("list")
@click.option("--email", default=None, help="one account's only")
@click.option("--limit", default=100, show_default=True)
def list_domains(email: str | None, limit: int) -> None:
    """Newest authorizations first: id, account, name, scope, status, expiry."""
    from sqlalchemy import select
    from sqlalchemy.orm import sessionmaker

    from schema.accounts import Account
    from schema.base import rfc3339, utcnow
    from schema.domains import DomainAuthorization as Authz
    from schema.domains import shown_status

    _settings, sessions = _sessions()
    assert isinstance(sessions, sessionmaker)
    query = select(Authz, Account.email).join(Account, Account.id == Authz.account_id)
    if email is not None:
        query = query.where(Account.email_key == email.strip().lower())
    query = query.order_by(Authz.created_at.desc()).limit(limit)
    now = utcnow()
    with sessions() as session:
        for authz, owner in session.execute(query).all():
            status = shown_status(authz.status, authz.expires_at, now).value
            scope = "+subdomains" if authz.include_subdomains else ""
            click.echo(
                f"{authz.id}  {owner}  {authz.name}{scope}  {status}  "
                f"{rfc3339(authz.expires_at)}  {authz.error or ''}".rstrip()
            )


@domains.command()
@click.argument("authorization_id", type=click.UUID)
def revoke(authorization_id: uuid.UUID) -> None:
    """Delete an authorization: no new certificate for what it covered."""
    from sqlalchemy import delete
    from sqlalchemy.orm import sessionmaker

    from schema.domains import DomainAuthorization

    _settings, sessions = _sessions()
    assert isinstance(sessions, sessionmaker)
    with sessions() as session:
        gone = session.execute(
            delete(DomainAuthorization).where(DomainAuthorization.id == authorization_id)
        )
        session.commit()
    if not gone.rowcount:
        raise click.ClickException(f"no authorization {authorization_id}")
    click.echo(f"{authorization_id} revoked")


COMMANDS = [domains]
