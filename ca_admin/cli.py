"""`ca-admin`: migrate, make admins, manage the CA and keys, run the worker or everything."""

from __future__ import annotations

import os
import sys

import click

from ca_admin.ca_commands import COMMANDS as CA_COMMANDS
from ca_admin.certificate_commands import COMMANDS as CERTIFICATE_COMMANDS
from ca_admin.domain_commands import COMMANDS as DOMAIN_COMMANDS
from ca_admin.hierarchy_commands import COMMANDS as HIERARCHY_COMMANDS
from ca_admin.webhook_commands import COMMANDS as WEBHOOK_COMMANDS
from schema.settings import CommonSettings


@click.group()
def main() -> None:
    """Operate a Tessera CA: database, admins, CA keys, webhooks, processes."""


@main.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Apply the database migrations (the same tree for both services)."""
    from schema.migrate import upgrade

    settings = CommonSettings()
    upgrade(settings.effective_direct_url, revision)
    click.echo(f"database at {revision}")


@main.command("create-admin")
@click.option("--email", required=True)
@click.option("--name", default="Administrator", show_default=True)
@click.option(
    "--password",
    envvar="ADMIN_PASSWORD",
    default=None,
    help="only when creating the account; read from ADMIN_PASSWORD or prompted",
)
@click.option("--create/--promote-only", default=True, show_default=True)
def create_admin(email: str, name: str, password: str | None, create: bool) -> None:
    """Make the account with EMAIL an admin, creating it if it does not exist."""
    from account_api.accounts import service
    from account_api.auth.passwords import Passwords
    from account_api.errors import ApiError
    from account_api.settings import AccountSettings
    from schema.db import make_engine, make_sessionmaker

    settings = AccountSettings()
    engine = make_engine(settings.effective_database_url)
    with make_sessionmaker(engine)() as session:
        exists = service.live_account_by_email(session, email) is not None
        if not exists and create and password is None:
            password = click.prompt(
                "password for the new admin", hide_input=True, confirmation_prompt=True
            )
        try:
            account = service.make_admin(session, Passwords(settings), email, password, name)
        except ApiError as exc:
            raise click.ClickException(exc.detail) from None
    click.echo(f"{account.email} is an admin (id {account.id})")


@main.command()
@click.option(
    "--workers",
    type=int,
    default=None,
    help="processes per service (default: WEB_CONCURRENCY or 2)",
)
@click.option("--no-migrate", is_flag=True, help="skip applying migrations first")
def run(workers: int | None, no_migrate: bool) -> None:
    """Migrate, then run both services and the notification worker until Ctrl-C."""
    from account_api.settings import AccountSettings
    from ca_admin.run import service_commands, supervise
    from schema import keyfiles
    from schema.migrate import upgrade

    settings = AccountSettings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if not no_migrate:
        upgrade(settings.effective_direct_url)
    # Make development secrets once, before several processes race to.
    keyfiles.token_signing_key(
        settings.var_dir,
        settings.token_private_key.get_secret_value() if settings.token_private_key else None,
        settings.token_private_key_file,
    )
    keyfiles.webhook_secret(settings)
    count = workers or int(os.environ.get("WEB_CONCURRENCY", "2"))
    click.echo(
        f"account service on http://{settings.host}:{settings.account_api_port} , "
        f"certificate service on http://{settings.host}:{settings.certificate_api_port} "
        "(Ctrl-C stops both)"
    )
    sys.exit(supervise(service_commands(settings, count), settings.var_dir))


for command in (
    *CA_COMMANDS,
    *HIERARCHY_COMMANDS,
    *CERTIFICATE_COMMANDS,
    *DOMAIN_COMMANDS,
    *WEBHOOK_COMMANDS,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
