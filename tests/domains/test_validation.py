"""The validator against real servers: each failure ends `invalid` with a clear error."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from schema.domains import DomainAuthorization
from schema.events import Event
from tests.conftest import Customer
from tests.domains.conftest import CA_IDENTITY, Domains, settle_with
from tests.domains.servers import Route, hang_until


def unique(label: str = "v") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.test"


def token_path(authz: dict[str, Any]) -> str:
    return "/.well-known/acme-challenge/" + authz["challenges"][0]["token"]


def fails(domains: Domains, customer: Customer, authz: dict[str, Any], kind: str) -> str:
    """Ask for the check; it must end invalid, and every answer on the way is < 500."""
    done = domains.validate(customer, authz, kind)
    assert done["status"] == "invalid", done
    challenge = next(c for c in done["challenges"] if c["type"] == kind)
    assert challenge["status"] == "invalid"
    assert done["error"]
    return str(done["error"])


def events_of(engine: Any, authz_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Event.type, Event.payload).where(Event.subject_id == uuid.UUID(authz_id))
        ).all()
    return [{"type": r.type, **r.payload["data"]} for r in rows]


def test_http01_proves_a_name_and_sends_domain_validated(
    make_customer: Callable[..., Customer], domains: Domains, engine: Any
) -> None:
    customer = make_customer()
    name = unique()
    authz = domains.create(customer, name)
    assert authz["status"] == "pending"
    domains.publish(authz, "http-01")
    done = domains.validate(customer, authz, "http-01")
    assert done["status"] == "valid" and done["validated_at"] and done["error"] is None
    assert domains.server.hosts[-1] == f"{name}:{domains.server.port}"  # the Host header
    [event] = events_of(engine, authz["id"])
    assert event == {
        "type": "domain.validated",
        "domain_id": authz["id"],
        "account_id": customer.id,
        "name": name,
        "include_subdomains": False,
        "status": "valid",
        "error": None,
        "expires_at": done["expires_at"],
    }


def test_wrong_txt_value_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains, engine: Any
) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique(), include_subdomains=True)
    domains.publish(authz, "dns-01", value="not-the-value")
    assert "holds the expected value" in fails(domains, customer, authz, "dns-01")
    [event] = events_of(engine, authz["id"])
    assert event["type"] == "domain.invalid" and "expected value" in event["error"]


def test_missing_txt_record_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique())
    assert "no TXT record at _acme-challenge." in fails(domains, customer, authz, "dns-01")


def test_wrong_body_is_invalid(make_customer: Callable[..., Customer], domains: Domains) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique())
    domains.publish(authz, "http-01", value="something else")
    assert "did not answer with the key authorization" in fails(domains, customer, authz, "http-01")


def test_not_found_is_invalid(make_customer: Callable[..., Customer], domains: Domains) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique())
    assert "answered HTTP 404" in fails(domains, customer, authz, "http-01")


def test_redirect_loop_is_invalid(make_customer: Callable[..., Customer], domains: Domains) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique())
    path = token_path(authz)
    domains.server.routes[path] = Route(302, headers={"Location": path + "/x"})
    domains.server.routes[path + "/x"] = Route(302, headers={"Location": path})
    assert "redirect loop" in fails(domains, customer, authz, "http-01")


def test_more_than_ten_redirects_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique())
    path = token_path(authz)
    for hop in range(12):
        here = path if hop == 0 else f"{path}/{hop}"
        domains.server.routes[here] = Route(301, headers={"Location": f"{path}/{hop + 1}"})
    assert "more than 10 redirects" in fails(domains, customer, authz, "http-01")


def test_redirect_to_the_right_body_is_followed(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    name, other = unique(), unique("other")
    authz = domains.create(customer, name)
    path = token_path(authz)
    port = domains.server.port
    domains.server.routes[path] = Route(307, headers={"Location": f"http://{other}:{port}/moved"})
    domains.server.routes["/moved"] = Route(
        body=authz["challenges"][0]["key_authorization"].encode()
    )
    assert domains.validate(customer, authz, "http-01")["status"] == "valid"
    assert domains.server.hosts[-1] == f"{other}:{port}"


def test_redirect_to_another_port_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    name = unique()
    authz = domains.create(customer, name)
    location = f"http://{name}:5432/"  # say, a database on the same host
    domains.server.routes[token_path(authz)] = Route(302, headers={"Location": location})
    assert "redirect to port 5432" in fails(domains, customer, authz, "http-01")


def test_ten_megabyte_body_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique())
    domains.server.routes[token_path(authz)] = Route(stream_bytes=10 * 1024 * 1024)
    assert "more than 65536 bytes" in fails(domains, customer, authz, "http-01")


def test_a_server_that_hangs_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    authz = domains.create(customer, unique())
    released = threading.Event()
    domains.server.routes[token_path(authz)] = Route(before=hang_until(released))
    try:
        assert "no answer within 2 s" in fails(domains, customer, authz, "http-01")
    finally:
        released.set()


def test_unreachable_host_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    name = unique("down")
    domains.zone.addresses[name] = ["127.0.0.2"]  # nothing listens there
    authz = domains.create(customer, name)
    assert "could not connect" in fails(domains, customer, authz, "http-01")


def test_name_without_address_is_invalid(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    authz = domains.create(customer, "nx.example.test")
    assert "has no A or AAAA record" in fails(domains, customer, authz, "http-01")


def test_caa_naming_another_ca_refuses(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    parent = unique("caa")
    domains.zone.caa[parent] = [(0, "issue", "other-ca.example")]
    authz = domains.create(customer, f"www.{parent}")
    domains.publish(authz, "http-01")
    error = fails(domains, customer, authz, "http-01")  # found by climbing to the parent
    assert error == f"CAA records at {parent} do not authorize this CA"


def test_caa_naming_this_ca_allows(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    name = unique("caa")
    domains.zone.caa[name] = [(0, "issue", f"{CA_IDENTITY}; account=1"), (0, "iodef", "x")]
    domains.zone.caa[f"sub.{name}"] = [(0, "issuewild", "other-ca.example")]
    domains.prove(customer, name)
    wide = domains.create(customer, f"sub.{name}", include_subdomains=True)
    domains.publish(wide, "dns-01")
    assert "do not authorize this CA" in fails(domains, customer, wide, "dns-01")


@pytest.mark.parametrize(
    ("deny", "target"),
    [
        (None, "loopback"),  # the default list
        (None, "169.254.169.254"),
        (None, "dns:169.254.169.254"),
        (None, "fd00:ec2::254"),
        ("169.254.0.0/16, fd00:ec2::254/128", "redirect:169.254.169.254"),
        ("169.254.0.0/16, fd00:ec2::254/128", "redirect:[::ffff:169.254.169.254]"),
        ("169.254.0.0/16, fd00:ec2::254/128", "redirect-name:169.254.169.254"),
    ],
)
def test_deny_networks_are_never_connected_to(
    make_customer: Callable[..., Customer],
    domains: Domains,
    settings: Any,
    engine: Any,
    deny: str | None,
    target: str,
) -> None:
    customer = make_customer()
    port = domains.server.port
    name = unique("deny")
    if target in ("169.254.169.254", "fd00:ec2::254"):
        name = target
    elif target.startswith("dns:"):
        domains.zone.addresses[name] = [target[4:]]
    authz = domains.create(customer, name)
    if target.startswith("redirect"):
        host = target.partition(":")[2]
        if target.startswith("redirect-name:"):
            host = unique("meta")
            domains.zone.addresses[host] = ["169.254.169.254"]
        domains.server.routes[token_path(authz)] = Route(
            302, headers={"Location": f"http://{host}:{port}/latest/meta-data/"}
        )
    else:
        domains.publish(authz, "http-01")
    asked = domains.client.post(
        f"/api/domains/{authz['id']}/validate", json={"type": "http-01"}, headers=customer.auth
    )
    assert asked.status_code == 202
    strict = settings.model_copy(update={"validation_deny_networks": deny})
    seen = len(domains.server.hosts)
    assert settle_with(strict, engine) == 1
    done = domains.get(customer, authz["id"])
    assert done["status"] == "invalid"
    assert "VALIDATION_DENY_NETWORKS" in done["error"]
    if not target.startswith("redirect"):
        assert len(domains.server.hosts) == seen  # never connected


OTHER_CA = "other-ca.example"


@pytest.mark.parametrize(
    ("issue", "issuewild", "include_subdomains", "allowed"),
    [
        # RFC 8659 section 4.3: issuewild speaks for wildcards only; an authorization with
        # subdomains (which covers wildcards) needs `issue` as well.
        (OTHER_CA, CA_IDENTITY, True, False),
        (CA_IDENTITY, OTHER_CA, True, False),
        (CA_IDENTITY, None, True, True),
        (OTHER_CA, None, True, False),
        (OTHER_CA, CA_IDENTITY, False, False),
        (CA_IDENTITY, OTHER_CA, False, True),  # issuewild is ignored for an exact name
        (CA_IDENTITY, CA_IDENTITY, True, True),
        (None, CA_IDENTITY, True, True),  # no `issue` set: the base name is unrestricted
        (None, OTHER_CA, True, False),
        (None, OTHER_CA, False, True),
    ],
)
def test_caa_issue_governs_every_authorization_and_issuewild_its_wildcards(
    make_customer: Callable[..., Customer],
    domains: Domains,
    issue: str | None,
    issuewild: str | None,
    include_subdomains: bool,
    allowed: bool,
) -> None:
    customer = make_customer()
    name = unique("caa")
    records = [(0, tag, value) for tag, value in (("issue", issue), ("issuewild", issuewild))]
    domains.zone.caa[name] = [(f, t, v) for f, t, v in records if v is not None]
    authz = domains.create(customer, name, include_subdomains=include_subdomains)
    domains.publish(authz, "dns-01")
    if allowed:
        done = domains.validate(customer, authz, "dns-01")
        assert done["status"] == "valid", done
    else:
        assert "do not authorize this CA" in fails(domains, customer, authz, "dns-01")


def test_a_stored_name_the_parser_refuses_ends_invalid_saying_so(
    make_customer: Callable[..., Customer], domains: Domains, engine: Any
) -> None:
    """A stored name the API would never take (written to the database directly, as an
    older process could) is never looked up or connected to (it once made the HTTP client
    raise InvalidURL and the row was never settled): the validation ends, invalid, with its
    event."""
    customer = make_customer()
    authz = domains.create(customer, unique("odd"))
    odd = f"line\nfeed-{uuid.uuid4().hex[:8]}.test"
    with engine.begin() as conn:
        conn.execute(
            update(DomainAuthorization)
            .where(DomainAuthorization.id == uuid.UUID(authz["id"]))
            .values(name=odd)
        )
    error = fails(domains, customer, authz, "http-01")
    assert error.startswith("name no longer accepted")
    [event] = events_of(engine, authz["id"])
    assert event["type"] == "domain.invalid" and event["error"] == error
