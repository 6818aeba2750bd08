"""Names are parsed one way at every door: a line feed, whitespace or a trailing dot is
refused (never trimmed), and internationalised names are converted one way (UTS 46
non-transitional, IDNA 2008) for requests, grants and the operator's policy alike."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import idna
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core import domains as rules
from core.errors import Invalid
from core.policy import NamePolicy
from schema.certificates import Certificate
from schema.db import make_sessionmaker
from schema.domains import DomainAuthorization
from tests.conftest import Customer
from tests.domains.conftest import names_settings

HOSTILE = [
    "victim.example\n.zone.test",
    "www.zone.test\n",
    "www.zone.test\r\n",
    " www.zone.test",
    "www.zone.test ",
    "www.zone.test.",
    "www\t.zone.test",
]


def _count(engine: Any, model: Any) -> int:
    with make_sessionmaker(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("name", HOSTILE)
def test_issuance_refuses_a_name_with_a_line_feed_space_or_trailing_dot_even_when_granted(
    make_customer: Callable[..., Customer],
    grant: Callable[..., Any],
    issue_as: Callable[..., Any],
    engine: Any,
    name: str,
) -> None:
    customer = make_customer()
    grant(customer, "zone.test", include_subdomains=True)
    before = _count(engine, Certificate)
    for body in ({"common_name": name}, {"common_name": "ok.zone.test", "dns_names": [name]}):
        response = issue_as(customer, **body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        field = ["body", "common_name"] if "dns_names" not in body else ["body", "dns_names", 0]
        assert [e["loc"] for e in response.json()["errors"]] == [field]
    assert _count(engine, Certificate) == before  # nothing signed, nothing stored


@pytest.mark.parametrize("name", HOSTILE)
def test_a_domain_authorization_refuses_the_same_names(
    make_customer: Callable[..., Customer], names_app: TestClient, engine: Any, name: str
) -> None:
    customer = make_customer()
    before = _count(engine, DomainAuthorization)
    response = names_app.post("/api/domains", json={"name": name}, headers=customer.auth)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "name"]]
    assert _count(engine, DomainAuthorization) == before


@pytest.mark.parametrize("name", [*HOSTILE, "10.0.0.1\n"])
def test_an_operator_grant_refuses_the_same_names(name: str) -> None:
    with pytest.raises(Invalid):
        rules.subject(name, False, NamePolicy.parse("", ""))


def test_an_internationalised_name_is_converted_one_way(
    make_customer: Callable[..., Customer],
    names_app: TestClient,
    grant: Callable[..., Any],
    issue_as: Callable[..., Any],
) -> None:
    customer = make_customer()
    tag = uuid.uuid4().hex[:6]
    unicode_name = f"faß-{tag}.test"
    a_label = f"{idna.encode(f'faß-{tag}', uts46=True, transitional=False).decode()}.test"
    made = names_app.post("/api/domains", json={"name": unicode_name}, headers=customer.auth)
    assert made.status_code == 201, made.text
    assert made.json()["name"] == a_label  # IDNA 2008: ß stays, never "fass"
    grant(customer, unicode_name)  # the grant converts the same way: it covers both spellings
    for spelling in (unicode_name, a_label):
        issued = issue_as(customer, spelling)
        assert issued.status_code == 201, issued.text
        assert issued.json()["dns_names"] == [a_label]


@pytest.fixture(scope="module")
def deny_app(
    database_url: str, var_dir: Path, dns_server: Any, challenge_server: Any
) -> Iterator[TestClient]:
    from certificate_api.main import create_app

    settings = names_settings(
        database_url, var_dir, dns_server[1], challenge_server.port, name_policy_deny="faß.test"
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("name", ["faß.test", "xn--fa-hia.test", "www.faß.test", "FAß.test"])
def test_a_unicode_deny_entry_refuses_every_spelling_of_its_name(
    make_customer: Callable[..., Customer], deny_app: TestClient, name: str
) -> None:
    customer = make_customer()
    response = deny_app.post("/api/domains", json={"name": name}, headers=customer.auth)
    assert response.status_code == 403, response.text
    assert response.json()["errors"][0]["msg"] == "denied by policy"
    fass = deny_app.post("/api/domains", json={"name": "fass.test"}, headers=customer.auth)
    assert fass.status_code in (200, 201), fass.text  # IDNA 2003's mapping is another name
