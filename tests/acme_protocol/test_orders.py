"""ACME orders on the customer's domain authorizations (RFC 8555 sections 7.4-7.5, RFC 8738):
what a new order offers, the CA's policy, reuse of a valid domain authorization (REST or
granted, a parent's with subdomains), another account's resources, order lists,
authorization deactivation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from acme import messages

from tests.acme_protocol.conftest import DENIED, Acme, Service, unique_name
from tests.acme_protocol.resources import dns, messages_order, new_order, post_as_get
from tests.acme_protocol.wire import problem
from tests.conftest import Customer
from tests.domains.servers import Route

ALL_CHALLENGES = {"http-01", "dns-01", "tls-alpn-01"}


def test_unproved_name_gets_a_pending_authorization_with_every_challenge(acme: Acme) -> None:
    account = acme.register()
    name = unique_name()
    created = new_order(acme, account, dns(name.upper()))
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "pending"
    assert order["identifiers"] == [{"type": "dns", "value": name}]
    assert created.headers["Location"].startswith(acme.url("/acme/order/"))
    [authz_url] = order["authorizations"]
    authz = post_as_get(acme, account, authz_url)
    assert authz["status"] == "pending"
    assert authz["identifier"] == {"type": "dns", "value": name}
    assert {c["type"] for c in authz["challenges"]} == ALL_CHALLENGES
    assert all(c["status"] == "pending" and len(c["token"]) >= 22 for c in authz["challenges"])
    assert len({c["token"] for c in authz["challenges"]}) == 3


def test_wildcard_is_offered_only_dns_01(acme: Acme) -> None:
    account = acme.register()
    base = unique_name()
    order = new_order(acme, account, dns(f"*.{base}")).json()
    assert order["identifiers"] == [{"type": "dns", "value": f"*.{base}"}]
    authz = post_as_get(acme, account, order["authorizations"][0])
    assert authz["identifier"] == {"type": "dns", "value": base}
    assert authz["wildcard"] is True
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]


def test_ip_address_is_offered_http_01_and_tls_alpn_01(acme: Acme) -> None:
    account = acme.register()
    payload = {"identifiers": [{"type": "ip", "value": "2001:db8:0:0::1"}]}
    order = new_order(acme, account, payload).json()
    assert order["identifiers"] == [{"type": "ip", "value": "2001:db8::1"}]
    authz = post_as_get(acme, account, order["authorizations"][0])
    assert {c["type"] for c in authz["challenges"]} == {"http-01", "tls-alpn-01"}


def test_pending_authorizations_are_not_shared_between_orders(acme: Acme) -> None:
    account = acme.register()
    name = unique_name()
    first = new_order(acme, account, dns(name)).json()
    second = new_order(acme, account, dns(name)).json()
    assert first["authorizations"] != second["authorizations"]


def test_name_the_policy_denies_is_rejected_identifier_with_subproblems(acme: Acme) -> None:
    account = acme.register()
    allowed, denied = unique_name(), f"www.{DENIED}"
    response = new_order(acme, account, dns(allowed, denied, f"*.{DENIED}"))
    body = problem(response, "rejectedIdentifier", 400)
    refused = {p["identifier"]["value"]: p for p in body["subproblems"]}
    assert set(refused) == {denied, f"*.{DENIED}"}
    for sub in refused.values():
        assert sub["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"
        assert sub["identifier"]["type"] == "dns"
    orders = post_as_get(acme, account, f"{account.kid}/orders")
    assert orders["orders"] == []


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"identifiers": []}, "malformed"),
        ({}, "malformed"),
        ({"identifiers": [{"type": "email", "value": "a@b.test"}]}, "unsupportedIdentifier"),
        ({"identifiers": [{"type": "dns", "value": "bad..name.test"}]}, "rejectedIdentifier"),
        ({"identifiers": [{"type": "dns", "value": "*.co.uk"}]}, "rejectedIdentifier"),
        ({"identifiers": [{"type": "ip", "value": "300.1.1.1"}]}, "rejectedIdentifier"),
        ({"identifiers": "x.test"}, "malformed"),
        (
            {"identifiers": [{"type": "dns", "value": "victim.example\n.x.test"}]},
            "rejectedIdentifier",
        ),
        ({"identifiers": [{"type": "dns", "value": "www.x.test\n"}]}, "rejectedIdentifier"),
        ({"identifiers": [{"type": "dns", "value": " www.x.test"}]}, "rejectedIdentifier"),
        ({"identifiers": [{"type": "dns", "value": "www.x.test."}]}, "rejectedIdentifier"),
        ({"identifiers": [{"type": "dns", "value": "*.x.test\r"}]}, "rejectedIdentifier"),
        ({"identifiers": [{"type": "ip", "value": "10.0.0.1\n"}]}, "rejectedIdentifier"),
    ],
    ids=[
        "empty",
        "missing",
        "email",
        "bad-name",
        "public-suffix-wildcard",
        "bad-ip",
        "string",
        "inner-line-feed",
        "trailing-line-feed",
        "leading-space",
        "trailing-dot",
        "wildcard-carriage-return",
        "ip-line-feed",
    ],
)
def test_bad_identifiers_are_refused(acme: Acme, payload: dict[str, Any], kind: str) -> None:
    account = acme.register()
    problem(new_order(acme, account, payload), kind, 400)


def test_name_with_a_valid_rest_authorization_is_ready_at_once(acme: Acme) -> None:
    account = acme.register()
    name = unique_name("rest")
    created = acme.wire.http.post(
        acme.url("/api/domains"), json={"name": name}, headers=account.customer.auth
    )
    assert created.status_code == 201, created.text
    challenge = next(c for c in created.json()["challenges"] if c["type"] == "http-01")
    path = f"/.well-known/acme-challenge/{challenge['token']}"
    acme.service.validators.http01.routes[path] = Route(
        body=challenge["key_authorization"].encode()
    )
    asked = acme.wire.http.post(
        acme.url(f"/api/domains/{created.json()['id']}/validate"),
        json={"type": "http-01"},
        headers=account.customer.auth,
    )
    assert asked.status_code == 202, asked.text
    assert acme.service.settle() >= 1
    order = new_order(acme, account, dns(name))
    assert order.status_code == 201, order.text
    assert order.json()["status"] == "ready"
    authz = post_as_get(acme, account, order.json()["authorizations"][0])
    assert authz["status"] == "valid"
    issued = acme.finalize(account, messages_order(acme, account, order))
    assert issued.body.status == messages.STATUS_VALID


def test_parent_granted_with_subdomains_covers_names_and_wildcards(acme: Acme) -> None:
    account = acme.register()
    base = unique_name("parent")
    acme.grant(account.customer, base, include_subdomains=True)
    order = new_order(acme, account, dns(base, f"www.{base}", f"*.{base}")).json()
    assert order["status"] == "ready"
    for url in order["authorizations"]:
        assert post_as_get(acme, account, url)["status"] == "valid"


def test_name_granted_without_subdomains_does_not_cover_its_wildcard(acme: Acme) -> None:
    account = acme.register()
    base = unique_name()
    acme.grant(account.customer, base)
    order = new_order(acme, account, dns(base, f"*.{base}")).json()
    assert order["status"] == "pending"
    states = [post_as_get(acme, account, url)["status"] for url in order["authorizations"]]
    assert sorted(states) == ["pending", "valid"]


def test_another_customers_authorization_does_not_count(acme: Acme) -> None:
    owner, other = acme.register(), acme.register()
    name = unique_name()
    acme.grant(owner.customer, name)
    assert new_order(acme, owner, dns(name)).json()["status"] == "ready"
    assert new_order(acme, other, dns(name)).json()["status"] == "pending"


def test_another_accounts_resources_are_not_found(acme: Acme) -> None:
    owner, other = acme.register(), acme.register()
    name = unique_name()
    order = new_order(acme, owner, dns(name)).json()
    authz = post_as_get(acme, owner, order["authorizations"][0])
    urls = [
        order["finalize"].removesuffix("/finalize"),
        order["authorizations"][0],
        authz["challenges"][0]["url"],
    ]
    for url in urls:
        problem(acme.wire.send(other.key, url, kid=other.kid), "malformed", 404)
    problem(
        acme.wire.send(other.key, acme.url("/acme/order/not-a-uuid"), kid=other.kid),
        "malformed",
        404,
    )


def test_account_orders_lists_the_accounts_orders(acme: Acme) -> None:
    account = acme.register()
    made = [new_order(acme, account, dns(unique_name())).headers["Location"] for _ in range(2)]
    listed = post_as_get(acme, account, f"{account.kid}/orders")["orders"]
    assert listed == made[::-1]


def test_authorization_deactivation_invalidates_its_order(acme: Acme) -> None:
    account = acme.register()
    order = new_order(acme, account, dns(unique_name())).json()
    url = order["authorizations"][0]
    done = acme.wire.send(account.key, url, {"status": "deactivated"}, kid=account.kid)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "deactivated"
    assert (
        post_as_get(acme, account, order["finalize"].removesuffix("/finalize"))["status"]
        == "invalid"
    )


@pytest.fixture(scope="module")
def unicode_deny(
    serve: Callable[..., contextlib.AbstractContextManager[Service]],
) -> Iterator[Service]:
    """A service of its own whose deny list names a name in its Unicode form."""
    with serve(name_policy_deny="faß.test") as service:
        yield service


@pytest.mark.parametrize("name", ["faß.test", "xn--fa-hia.test", "www.faß.test"])
def test_a_unicode_deny_entry_rejects_every_spelling_of_its_name(
    unicode_deny: Service, make_customer: Callable[..., Customer], name: str
) -> None:
    acme = Acme(unicode_deny, make_customer)
    try:
        account = acme.register()
        body = problem(new_order(acme, account, dns(name)), "rejectedIdentifier", 400)
        [sub] = body["subproblems"]
        assert sub["identifier"]["type"] == "dns"
        assert sub["detail"] == "denied by policy"  # refused by the policy, not the parser
    finally:
        acme.wire.close()
