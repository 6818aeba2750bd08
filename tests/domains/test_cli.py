"""`ca-admin domains grant | list | revoke` against the suite's database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ca_admin.cli import main
from tests.conftest import Customer


@pytest.fixture
def ca_admin(database_url: str, var_dir: Path) -> Callable[..., Any]:
    env = {"DATABASE_URL": database_url, "VAR_DIR": str(var_dir)}
    return lambda *args: CliRunner().invoke(main, ["domains", *args], env=env)


def test_grant_list_and_revoke(
    make_customer: Callable[..., Customer], issue_as: Callable[..., Any], ca_admin: Any
) -> None:
    customer = make_customer()
    base = f"cli-{uuid.uuid4().hex[:8]}.test"
    assert issue_as(customer, f"*.{base}").status_code == 403

    granted = ca_admin("grant", customer.email.upper(), base, "--include-subdomains", "--days", "5")
    assert granted.exit_code == 0, granted.output
    assert f"may have {base} and every name under it" in granted.output
    authz_id = re.match(r"^([0-9a-f-]{36}):", granted.output).group(1)  # type: ignore[union-attr]
    assert issue_as(customer, f"*.{base}").status_code == 201

    listed = ca_admin("list", "--email", customer.email)
    assert listed.exit_code == 0
    assert f"{authz_id}  {customer.email}  {base}+subdomains  valid" in listed.output

    assert ca_admin("revoke", authz_id).exit_code == 0
    assert issue_as(customer, f"*.{base}").status_code == 403
    again = ca_admin("revoke", authz_id)
    assert again.exit_code != 0 and "no authorization" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody@example.com", "example.test"], "no account with email"),
        (["{email}", "*.example.test"], "no wildcard"),
        (["{email}", "co.uk"], "denied by the CA's policy"),
        (["{email}", "10.0.0.1", "--include-subdomains"], "no subdomains"),
    ],
)
def test_grant_refuses_what_cannot_be_granted(
    make_customer: Callable[..., Customer], ca_admin: Any, args: list[str], message: str
) -> None:
    customer = make_customer()
    result = ca_admin("grant", *[a.format(email=customer.email) for a in args])
    assert result.exit_code != 0
    assert message in result.output
