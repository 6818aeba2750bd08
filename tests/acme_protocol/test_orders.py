"""ACME orders on the customer's domain authorizations (RFC 8555 sections 7.4-7.5, RFC 8738):
what a new order offers, the CA's policy, reuse of a REST domain authorization, challenges
settled by the worker making domain authorizations, failed challenges, finalization."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import josepy as jose
import pytest
from acme import messages
from acme.crypto_util import make_csr
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.acme_protocol.conftest import (
    DENIED,
    Account,
    Acme,
    challenge_type,
    csr_b64,
    csr_for,
    unique_name,
)
from tests.acme_protocol.wire import problem
from tests.conftest import Customer
from tests.domains.servers import Route

ALL_CHALLENGES = {"http-01", "dns-01", "tls-alpn-01"}


def dns(*names: str) -> dict[str, Any]:
    """A newOrder payload for DNS names."""
    return {"identifiers": [{"type": "dns", "value": n} for n in names]}


def post_as_get(acme: Acme, account: Account, url: str) -> Any:
    response = acme.wire.send(account.key, url, kid=account.kid)
    assert response.status_code == 200, response.text
    return response.json()


def new_order(acme: Acme, account: Account, payload: dict[str, Any]) -> Any:
    return acme.wire.send(account.key, acme.url("/acme/new-order"), payload, kid=account.kid)


def domains_of(acme: Acme, customer: Customer) -> list[dict[str, Any]]:
    """The customer's domain authorizations through the REST API."""
    response = acme.wire.http.get(acme.url("/api/domains"), headers=customer.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


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
        ({"identifiers": [{"type": "ip", "value": "300.1.1.1"}]}, "malformed"),
        ({"identifiers": "x.test"}, "malformed"),
    ],
    ids=["empty", "missing", "email", "bad-name", "public-suffix-wildcard", "bad-ip", "string"],
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


def messages_order(acme: Acme, account: Account, response: Any) -> messages.OrderResource:
    """The library's resource for an order made raw (its CSR for the order's names)."""
    body = messages.Order.from_json(response.json())
    csr, _key = csr_for([i.value for i in body.identifiers])
    return messages.OrderResource(body=body, uri=response.headers["Location"], csr_pem=csr)


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


def test_concurrent_finalizations_issue_one_certificate(acme: Acme) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    csr = csr_b64([name])
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: acme.wire.send(
                    account.key, order["finalize"], {"csr": csr}, kid=account.kid
                ),
                range(4),
            )
        )
    assert sorted(a.status_code for a in answers) == [200, 403, 403, 403]
    for refused in (a for a in answers if a.status_code == 403):
        problem(refused, "orderNotReady", 403)
    listed = acme.wire.http.get(acme.url("/api/certificates"), headers=account.customer.auth)
    assert [c["common_name"] for c in listed.json()["items"]] == [name]


def test_deleted_domain_authorization_no_longer_covers_acme_orders(acme: Acme) -> None:
    """DELETE /api/domains/{id}: no new certificate for the name until authorized again,
    also through an ACME order made ready by it before."""
    account = acme.register()
    name = unique_name("deleted")
    acme.grant(account.customer, name)
    ready = new_order(acme, account, dns(name)).json()
    assert ready["status"] == "ready"
    [domain] = [d for d in domains_of(acme, account.customer) if d["name"] == name]
    gone = acme.wire.http.delete(
        acme.url(f"/api/domains/{domain['id']}"), headers=account.customer.auth
    )
    assert gone.status_code == 204, gone.text
    refused = acme.wire.send(
        account.key, ready["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    problem(refused, "unauthorized", 403)
    listed = acme.wire.http.get(acme.url("/api/certificates"), headers=account.customer.auth)
    assert listed.json()["items"] == []
    assert new_order(acme, account, dns(name)).json()["status"] == "pending"


def test_another_customers_authorization_does_not_count(acme: Acme) -> None:
    owner, other = acme.register(), acme.register()
    name = unique_name()
    acme.grant(owner.customer, name)
    assert new_order(acme, owner, dns(name)).json()["status"] == "ready"
    assert new_order(acme, other, dns(name)).json()["status"] == "pending"


def test_http_01_through_acme_makes_a_valid_domain_authorization(acme: Acme) -> None:
    account = acme.register()
    name = unique_name("http")
    issued = acme.issue(account, [name], "http-01")
    assert issued.leaf.subject is not None
    [domain] = [d for d in domains_of(acme, account.customer) if d["name"] == name]
    assert (domain["status"], domain["include_subdomains"]) == ("valid", False)
    # A later order for the name reuses it.
    assert new_order(acme, account, dns(name)).json()["status"] == "ready"


def test_wildcard_dns_01_makes_a_domain_authorization_with_subdomains(acme: Acme) -> None:
    account = acme.register()
    base = unique_name("wild")
    acme.issue(account, [f"*.{base}"], "dns-01")
    [domain] = [d for d in domains_of(acme, account.customer) if d["name"] == base]
    assert (domain["status"], domain["include_subdomains"]) == ("valid", True)
    later = new_order(acme, account, dns(f"deep.www.{base}", f"*.{base}")).json()
    assert later["status"] == "ready"


def test_dns_01_for_a_name_proves_that_name(acme: Acme) -> None:
    account = acme.register()
    name = unique_name("dns")
    acme.issue(account, [name], "dns-01")
    [domain] = [d for d in domains_of(acme, account.customer) if d["name"] == name]
    assert (domain["status"], domain["include_subdomains"]) == ("valid", False)


def test_tls_alpn_01_completes(acme: Acme) -> None:
    account = acme.register()
    name = unique_name("alpn")
    issued = acme.issue(account, [name], "tls-alpn-01")
    assert issued.order.body.status == messages.STATUS_VALID
    assert any(d["name"] == name for d in domains_of(acme, account.customer))


def test_ip_address_through_http_01(acme: Acme) -> None:
    account = acme.register()
    issued = acme.issue(account, ["127.0.0.1"], "http-01")
    san = issued.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert any(d["name"] == "127.0.0.1" for d in domains_of(acme, account.customer))


def test_ip_address_through_tls_alpn_01(acme: Acme) -> None:
    """RFC 8738 section 6: the SNI is the address's reverse-DNS name."""
    account = acme.register()
    issued = acme.issue(account, ["127.0.0.1"], "tls-alpn-01")
    assert issued.order.body.status == messages.STATUS_VALID
    assert "1.0.0.127.in-addr.arpa" in acme.service.validators.tls.server_names


def test_failed_challenge_makes_authorization_and_order_invalid(acme: Acme) -> None:
    account = acme.register()
    name = unique_name("fail")
    orderr, _key = acme.order(account, [name])
    acme.answer(account, orderr, "http-01", wrong=True)
    order = post_as_get(acme, account, orderr.uri)
    assert order["status"] == "invalid"
    assert order["error"]["type"].startswith("urn:ietf:params:acme:error:")
    authz = post_as_get(acme, account, order["authorizations"][0])
    assert authz["status"] == "invalid"
    [failed] = [c for c in authz["challenges"] if c["type"] == "http-01"]
    assert failed["status"] == "invalid"
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    assert not any(
        d["name"] == name and d["status"] == "valid" for d in domains_of(acme, account.customer)
    )
    finalize = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    problem(finalize, "orderNotReady", 403)


@pytest.mark.parametrize("first", ["passing", "failing"])
def test_two_challenges_of_one_authorization_the_first_settled_decides(
    acme: Acme, first: str
) -> None:
    """A client may answer several challenges of an authorization; the first outcome
    recorded settles it, and a later one changes only its own challenge."""
    account = acme.register()
    name = unique_name("two")
    orderr, _key = acme.order(account, [name])
    [authzr] = orderr.authorizations
    failing = acme.publish(account, authzr, "http-01", wrong=True)
    passing = acme.publish(account, authzr, "dns-01")
    answers = [passing, failing] if first == "passing" else [failing, passing]
    for challb in answers:
        answered = acme.wire.send(account.key, challb.uri, {}, kid=account.kid)
        assert answered.json()["status"] == "processing", answered.text
    assert acme.service.settle(one_challenge=True) == 1
    assert acme.service.settle(one_challenge=True) == 1
    authz = post_as_get(acme, account, authzr.uri)
    order = post_as_get(acme, account, orderr.uri)
    states = {c["type"]: c["status"] for c in authz["challenges"]}
    assert (states["http-01"], states["dns-01"]) == ("invalid", "valid")
    if first == "passing":
        assert (authz["status"], order["status"]) == ("valid", "ready")
        assert acme.finalize(account, orderr).body.status == messages.STATUS_VALID
    else:
        assert (authz["status"], order["status"]) == ("invalid", "invalid")
        assert not any(
            d["name"] == name and d["status"] == "valid" for d in domains_of(acme, account.customer)
        )


def failed_challenge(acme: Acme, account: Account, name: str, kind: str, wrong: bool) -> Any:
    """Answer the order's one authorization with `kind` (the wrong key authorization when
    `wrong`; nothing published otherwise), settle, and return the challenge."""
    orderr, _key = acme.order(account, [name])
    [authzr] = orderr.authorizations
    if wrong:
        challb = acme.publish(account, authzr, kind, wrong=True)
    else:
        challb = next(c for c in authzr.body.challenges if challenge_type(c) == kind)
    answered = acme.wire.send(account.key, challb.uri, {}, kid=account.kid)
    assert answered.status_code == 200, answered.text
    assert acme.service.settle() >= 1
    authz = post_as_get(acme, account, authzr.uri)
    assert authz["status"] == "invalid"
    return next(c for c in authz["challenges"] if c["type"] == kind)


# Names holding the words the error types are told apart by, so only the reason counts.
TRICKY = "caa-dns-txt-tls-alpn-connect-refused-timeout"


@pytest.mark.parametrize(
    ("kind", "wrong", "error"),
    [
        ("http-01", True, "incorrectResponse"),
        ("http-01", False, "incorrectResponse"),  # 404 from the challenge server
        ("dns-01", True, "incorrectResponse"),
        ("dns-01", False, "dns"),  # no TXT record at all
        ("tls-alpn-01", True, "incorrectResponse"),
        ("tls-alpn-01", False, "tls"),  # the TLS server does not know the name
    ],
)
def test_failed_challenge_error_type_comes_from_the_reason_not_the_name(
    acme: Acme, kind: str, wrong: bool, error: str
) -> None:
    account = acme.register()
    failed = failed_challenge(acme, account, unique_name(TRICKY), kind, wrong)
    assert failed["status"] == "invalid"
    assert failed["error"]["type"] == f"urn:ietf:params:acme:error:{error}", failed["error"]


def test_challenge_nothing_listens_for_is_a_connection_error(acme: Acme) -> None:
    account = acme.register()
    name = unique_name("unreachable")
    acme.service.validators.zone.addresses[name] = ["127.0.0.2"]  # nothing listens there
    failed = failed_challenge(acme, account, name, "http-01", wrong=True)
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:connection", failed["error"]


def test_finalize_before_ready_is_order_not_ready(acme: Acme) -> None:
    account = acme.register()
    name = unique_name()
    order = new_order(acme, account, dns(name)).json()
    response = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    problem(response, "orderNotReady", 403)
    assert (
        post_as_get(acme, account, order["finalize"].removesuffix("/finalize"))["status"]
        == "pending"
    )


@pytest.mark.parametrize("fault", ["other-name", "extra-name", "missing-name", "garbage"])
def test_csr_whose_names_differ_from_the_order_is_bad_csr(acme: Acme, fault: str) -> None:
    account = acme.register()
    name, second = unique_name(), unique_name()
    acme.grant(account.customer, name)
    acme.grant(account.customer, second)
    order = new_order(acme, account, dns(name, second)).json()
    assert order["status"] == "ready"
    names = {
        "other-name": [name, unique_name()],
        "extra-name": [name, second, unique_name()],
        "missing-name": [name],
        "garbage": [],
    }[fault]
    csr = csr_b64(names) if names else jose.b64encode(b"not a CSR").decode()
    response = acme.wire.send(account.key, order["finalize"], {"csr": csr}, kid=account.kid)
    problem(response, "badCSR", 400)
    order_url = order["finalize"].removesuffix("/finalize")
    assert post_as_get(acme, account, order_url)["status"] == "ready"
    fixed = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([second, name])}, kid=account.kid
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["status"] == "valid"
    assert fixed.json()["certificate"].startswith(acme.url("/acme/cert/"))


def ready_order(acme: Acme, account: Account) -> tuple[str, dict[str, Any]]:
    """A ready order for a granted name: the name and the order."""
    name = unique_name()
    acme.grant(account.customer, name)
    order = new_order(acme, account, dns(name)).json()
    assert order["status"] == "ready"
    return name, order


@pytest.mark.parametrize(
    "payload", [None, {}, {"csr": 5}, {"csr": ["x"]}], ids=["no-payload", "empty", "int", "list"]
)
def test_finalize_without_a_csr_is_malformed_and_leaves_the_order_ready(
    acme: Acme, payload: Any
) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    problem(acme.wire.send(account.key, order["finalize"], payload, kid=account.kid), "malformed")
    order_url = order["finalize"].removesuffix("/finalize")
    assert post_as_get(acme, account, order_url)["status"] == "ready"
    fixed = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    assert fixed.json()["status"] == "valid", fixed.text


def csr_der(key: Any, names: list[str]) -> bytes:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return x509.load_pem_x509_csr(make_csr(pem, names)).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("fault", ["rsa-1024", "rsa-exponent-3", "bad-signature"])
def test_unacceptable_csr_is_bad_csr(acme: Acme, fault: str) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    if fault == "bad-signature":
        der = bytearray(csr_der(ec.generate_private_key(ec.SECP256R1()), [name]))
        der[-5] ^= 1
    else:
        exponent = 3 if fault == "rsa-exponent-3" else 65537
        size = 2048 if fault == "rsa-exponent-3" else 1024
        der = bytearray(csr_der(rsa.generate_private_key(exponent, size), [name]))
    csr = jose.b64encode(bytes(der)).decode()
    problem(acme.wire.send(account.key, order["finalize"], {"csr": csr}, kid=account.kid), "badCSR")
    assert (
        post_as_get(acme, account, order["finalize"].removesuffix("/finalize"))["status"] == "ready"
    )


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
