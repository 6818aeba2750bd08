"""Who may have which names, at issuance: authorizations, wildcards, IPs, the policy."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from schema.certificates import Certificate
from schema.domains import DomainAuthorization
from tests.conftest import Customer
from tests.domains.conftest import Domains, names_settings


def unique(label: str = "host") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.test"


def refused(response: Any) -> list[tuple[list[str], str]]:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [(err["loc"], err["msg"]) for err in response.json()["errors"]]


def test_nobody_gets_a_name_they_have_not_authorized(
    make_customer: Callable[..., Customer], issue_as: Callable[..., Any], names_app: TestClient
) -> None:
    customer = make_customer()
    name, other = unique(), unique()
    response = issue_as(customer, name, dns_names=[other], ip_addresses=["10.0.0.1"])
    assert refused(response) == [
        (["body", "common_name", name], "not authorized"),
        (["body", "dns_names", other], "not authorized"),
        (["body", "ip_addresses", "10.0.0.1"], "not authorized"),
    ]
    listed = names_app.get("/api/certificates", headers=customer.auth).json()
    assert listed["items"] == []  # nothing signed, nothing stored


def test_one_customer_cannot_get_another_customers_validated_name(
    make_customer: Callable[..., Customer], domains: Domains, issue_as: Callable[..., Any]
) -> None:
    owner, intruder = make_customer(), make_customer()
    name = unique("www")
    domains.prove(owner, name)
    assert issue_as(owner, name).status_code == 201
    assert refused(issue_as(intruder, name)) == [(["body", "common_name", name], "not authorized")]


def test_wildcard_needs_a_dns01_include_subdomains_authorization(
    make_customer: Callable[..., Customer], domains: Domains, issue_as: Callable[..., Any]
) -> None:
    customer = make_customer()
    base = unique("zone")
    domains.prove(customer, base, "http-01")  # the exact name only
    assert issue_as(customer, base).status_code == 201
    assert refused(issue_as(customer, f"*.{base}")) == [
        (["body", "common_name", f"*.{base}"], "not authorized")
    ]
    assert refused(issue_as(customer, f"a.{base}"))
    # include_subdomains is proved with dns-01 only
    wide = domains.create(customer, base, include_subdomains=True)
    assert [c["type"] for c in wide["challenges"]] == ["dns-01"]
    wrong = domains.client.post(
        f"/api/domains/{wide['id']}/validate", json={"type": "http-01"}, headers=customer.auth
    )
    assert wrong.status_code == 422
    domains.publish(wide, "dns-01")
    assert domains.validate(customer, wide, "dns-01")["status"] == "valid"
    issued = issue_as(customer, f"*.{base}", dns_names=[f"a.b.{base}"])
    assert issued.status_code == 201, issued.text


def test_ip_address_needs_its_own_http01_authorization(
    make_customer: Callable[..., Customer], domains: Domains, issue_as: Callable[..., Any]
) -> None:
    customer = make_customer()
    domains.prove(customer, unique(), "dns-01")
    assert refused(issue_as(customer, "127.0.0.1")) == [
        (["body", "common_name", "127.0.0.1"], "not authorized")
    ]
    authz = domains.create(customer, "127.0.0.1")
    assert [c["type"] for c in authz["challenges"]] == ["http-01"]
    domains.publish(authz, "http-01")
    assert domains.validate(customer, authz, "http-01")["status"] == "valid"
    assert issue_as(customer, "127.0.0.1").status_code == 201
    assert refused(issue_as(customer, "127.0.0.1", ip_addresses=["127.0.0.2"])) == [
        (["body", "ip_addresses", "127.0.0.2"], "not authorized")
    ]


def test_deleted_authorization_stops_issuance(
    make_customer: Callable[..., Customer], domains: Domains, issue_as: Callable[..., Any]
) -> None:
    customer = make_customer()
    name = unique()
    authz = domains.prove(customer, name)
    first = issue_as(customer, name)
    assert first.status_code == 201
    gone = domains.client.delete(f"/api/domains/{authz['id']}", headers=customer.auth)
    assert gone.status_code == 204
    assert refused(issue_as(customer, name)) == [(["body", "common_name", name], "not authorized")]
    kept = domains.client.get(f"/api/certificates/{first.json()['id']}", headers=customer.auth)
    assert kept.json()["status"] == "active"  # issued certificates stay as they are


def test_expired_authorization_stops_issuance(
    make_customer: Callable[..., Customer],
    domains: Domains,
    issue_as: Callable[..., Any],
    engine: Any,
) -> None:
    customer = make_customer()
    name = unique()
    authz = domains.prove(customer, name)
    with engine.begin() as conn:
        conn.execute(
            update(DomainAuthorization)
            .where(DomainAuthorization.id == uuid.UUID(authz["id"]))
            .values(expires_at=datetime(2020, 1, 1, tzinfo=UTC))
        )
    assert domains.get(customer, authz["id"])["status"] == "expired"
    assert refused(issue_as(customer, name)) == [(["body", "common_name", name], "not authorized")]


@pytest.fixture(scope="module")
def policy_app(database_url: str, var_dir: Path, dns_server: Any, challenge_server: Any) -> Any:
    from certificate_api.main import create_app

    settings = names_settings(
        database_url,
        var_dir,
        dns_server[1],
        challenge_server.port,
        name_policy_allow="allowed.test, 10.0.0.0/8",
        name_policy_deny="bad.allowed.test, 10.9.0.0/16",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_deny_wins_over_allow_and_over_an_authorization(
    make_customer: Callable[..., Customer], policy_app: TestClient, grant: Callable[..., Any]
) -> None:
    customer = make_customer()
    grant(customer, "allowed.test", include_subdomains=True)
    grant(customer, "outside.test", include_subdomains=True)
    grant(customer, "10.9.0.1")
    grant(customer, "10.1.0.1")

    def post(common_name: str, **body: Any) -> Any:
        payload = {"common_name": common_name, **body}
        return policy_app.post("/api/certificates", json=payload, headers=customer.auth)

    assert post("www.allowed.test", ip_addresses=["10.1.0.1"]).status_code == 201
    assert refused(post("bad.allowed.test")) == [
        (["body", "common_name", "bad.allowed.test"], "denied by policy")
    ]
    assert refused(post("x.bad.allowed.test", dns_names=["*.allowed.test"])) == [
        (["body", "common_name", "x.bad.allowed.test"], "denied by policy"),
        (["body", "dns_names", "*.allowed.test"], "denied by policy"),  # it would cover bad.
    ]
    assert refused(post("www.outside.test", ip_addresses=["10.9.0.1"])) == [
        (["body", "common_name", "www.outside.test"], "denied by policy"),  # outside allow
        (["body", "ip_addresses", "10.9.0.1"], "denied by policy"),
    ]
    # Label boundaries: notallowed.test is not under allowed.test
    assert refused(post("notallowed.test"))[0][1] == "denied by policy"
    # Asking to be authorized for a denied name is refused at once
    asked = policy_app.post(
        "/api/domains", json={"name": "bad.allowed.test"}, headers=customer.auth
    )
    assert asked.status_code == 403


def test_wildcard_under_a_public_suffix_is_refused_even_when_names_are_open(
    make_customer: Callable[..., Customer], certs: Any
) -> None:
    customer = make_customer()  # `certs` runs with NAME_AUTHORIZATION=open
    for name in ("*.co.uk", "*.github.io"):
        response = certs.post(
            "/api/certificates", json={"common_name": name}, headers=customer.auth
        )
        assert refused(response) == [(["body", "common_name", name], "denied by policy")]
    ok = certs.post(
        "/api/certificates", json={"common_name": "*.example.co.uk"}, headers=customer.auth
    )
    assert ok.status_code == 201, ok.text


def test_authorization_deleted_while_signing_stops_the_insert(
    make_customer: Callable[..., Customer],
    names_app: TestClient,
    issue_as: Callable[..., Any],
    grant: Callable[..., Any],
    engine: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The authorizations read before signing are re-checked, share-locked, in the insert's
    transaction: one deleted in between means 403 and nothing stored."""
    from core import issuance

    customer = make_customer()
    name = unique()
    granted = grant(customer, name)
    sign = issuance._sign

    async def sign_then_delete(*args: Any) -> Any:
        issued = await sign(*args)  # the name check has passed: now the grant goes
        with engine.begin() as conn:
            conn.execute(delete(DomainAuthorization).where(DomainAuthorization.id == granted))
        return issued

    monkeypatch.setattr(issuance, "_sign", sign_then_delete)
    response = issue_as(customer, name)
    assert response.status_code == 403, response.text
    assert "deleted or expired" in response.json()["detail"]
    monkeypatch.undo()
    listed = names_app.get("/api/certificates", headers=customer.auth).json()
    assert listed["items"] == []


def test_issuance_judges_the_account_row_even_for_a_name_it_holds(
    make_customer: Callable[..., Customer],
    issue_as: Callable[..., Any],
    grant: Callable[..., Any],
    engine: Any,
) -> None:
    """The read that brings the covering authorizations judges the account as every route
    does: a token older than the account's last sign-out, or a deleted account, is 401
    whatever names it holds, and nothing is stored."""
    from schema.accounts import Account

    retired, deleted = make_customer(), make_customer()
    held = {retired.id: unique(), deleted.id: unique()}
    for customer in (retired, deleted):
        grant(customer, held[customer.id])
        assert issue_as(customer, held[customer.id]).status_code == 201
    changes = {
        retired.id: {"token_generation": Account.token_generation + 1},
        deleted.id: {"deleted_at": datetime.now(UTC)},
    }
    with engine.begin() as conn:
        for account_id, values in changes.items():
            conn.execute(update(Account).where(Account.id == uuid.UUID(account_id)).values(values))
    for customer in (retired, deleted):
        response = issue_as(customer, held[customer.id])
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(Certificate)
            .where(Certificate.account_id.in_([uuid.UUID(retired.id), uuid.UUID(deleted.id)]))
        ).scalar_one()
    assert stored == 2  # the two first certificates only


def test_names_are_matched_in_their_normalized_form(
    make_customer: Callable[..., Customer], issue_as: Callable[..., Any], grant: Callable[..., Any]
) -> None:
    customer = make_customer()
    base = unique("bücher")
    grant(customer, base, include_subdomains=True)  # stored as an A-label
    grant(customer, "2001:db8::1")
    issued = issue_as(
        customer, f"WWW.{base.upper()}", dns_names=[f"*.{base}"], ip_addresses=["2001:DB8:0::1"]
    )
    assert issued.status_code == 201, issued.text
    assert issued.json()["dns_names"][0].startswith("www.xn--")
    # Case and IDNA are one name's spellings; a trailing dot is refused, never trimmed.
    assert issue_as(customer, f"www.{base}.").status_code == 422
