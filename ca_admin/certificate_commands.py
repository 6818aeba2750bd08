"""`ca-admin certificates`: operators' look at issued certificates."""

from __future__ import annotations

import json
import sys

import click

PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"


@click.group()
def certificates() -> None:
    """Issued certificates: find the ones the current rules would refuse."""


@certificates.command()
@click.option(
    "--revoke",
    is_flag=True,
    help=f"revoke each one found ({PRIVILEGE_WITHDRAWN}), with its event",
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
def malformed(revoke: bool, batch_size: int) -> None:
    """List every unrevoked certificate whose names the name parser refuses (one JSON object
    per line: id, serial, account, status and the refused names); with --revoke, revoke them.

    Run once after upgrading to a release whose name rules are stricter: certificates signed
    before it may hold names that are refused now (a line feed inside a name, say)."""
    from ca_admin import malformed_names
    from schema.db import make_engine, make_sessionmaker
    from schema.settings import CommonSettings

    settings = CommonSettings()
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    found = revoked = 0
    for item in malformed_names.find(sessions, batch_size):
        found += 1
        shown = item
        if revoke and malformed_names.revoke(sessions, item.id, PRIVILEGE_WITHDRAWN):
            revoked += 1
            shown = item._replace(status="revoked")
        click.echo(json.dumps(shown.json()))
    summary = f"{found} unrevoked certificate(s) with names the rules refuse"
    click.echo(summary + (f"; {revoked} revoked" if revoke else ""), file=sys.stderr)


COMMANDS = (certificates,)
