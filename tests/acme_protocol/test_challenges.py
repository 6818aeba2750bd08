"""ACME challenges settled by the worker (http-01, dns-01, tls-alpn-01, for names, wildcards and
IP addresses): a passed one makes the customer's domain authorization, a failed one makes its
authorization and order invalid with an error whose type follows the reason."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from acme import messages
from cryptography import x509
from sqlalchemy import update

from schema.acme import AcmeAuthorization
from tests.acme_protocol.conftest import (
    Account,
    Acme,
    Service,
    challenge_type,
    csr_b64,
    unique_name,
)
from tests.acme_protocol.resources import dns, domains_of, new_order, post_as_get
from tests.acme_protocol.test_limits import in_one_hour, rate_limited
from tests.acme_protocol.wire import problem
from tests.conftest import Customer
from tests.domains.servers import X400_SAN


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
    assert acme.service.settle(account.customer.id) == 1
    assert acme.service.settle(account.customer.id) == 1
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


@pytest.fixture(scope="module")
def strict(serve: Callable[..., contextlib.AbstractContextManager[Service]]) -> Iterator[Service]:
    """A service of its own that allows one failed validation an hour."""
    with serve(acme_failed_validations_per_hour=1) as running:
        yield running


@pytest.mark.parametrize(
    ("fault", "kind", "detail"),
    [
        ("line feed in the stored name", "rejectedIdentifier", "name no longer accepted"),
        ("x400Address in the SAN", "serverInternal", "unexpected failure"),
    ],
)
def test_a_check_that_cannot_run_or_fails_unexpectedly_still_settles_and_counts_as_failed(
    strict: Service, make_customer: Callable[..., Customer], fault: str, kind: str, detail: str
) -> None:
    """A stored name the parser refuses (written before the rules were strict) is never
    looked up: rejectedIdentifier. A check that raises what no check expects
    (cryptography's UnsupportedGeneralNameType for an x400Address) is serverInternal. Both
    settle invalid and count against the failed-validation limit."""
    acme = Acme(strict, make_customer)

    def run() -> tuple[Any, Any]:
        account = acme.register()
        odd, second = unique_name("odd"), unique_name("next")
        orderr, _key = acme.order(account, [odd, second])
        authzr = next(a for a in orderr.authorizations if a.body.identifier.value == odd)
        if fault.startswith("line feed"):
            with strict.engine.begin() as conn:
                conn.execute(
                    update(AcmeAuthorization)
                    .where(AcmeAuthorization.id == uuid.UUID(authzr.uri.rsplit("/", 1)[1]))
                    .values(value=odd.replace("-", "\n", 1))
                )
            challb = acme.publish(account, authzr, "http-01")
        else:
            challb = acme.publish(account, authzr, "tls-alpn-01", san_der=X400_SAN)
        answered = acme.wire.send(account.key, challb.uri, {}, kid=account.kid)
        assert answered.status_code == 200, answered.text
        assert strict.settle() >= 1
        authz = post_as_get(acme, account, authzr.uri)
        other = next(a for a in orderr.authorizations if a.body.identifier.value == second)
        challb = acme.publish(account, other, "http-01")
        return authz, acme.wire.send(account.key, challb.uri, {}, kid=account.kid)

    try:
        authz, again = in_one_hour(run)
    finally:
        acme.wire.close()
    assert authz["status"] == "invalid"
    [failed] = [c for c in authz["challenges"] if c["status"] == "invalid"]
    assert failed["error"]["type"] == f"urn:ietf:params:acme:error:{kind}", failed
    assert detail in failed["error"]["detail"]
    rate_limited(again)  # the failure counted
