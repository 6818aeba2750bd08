"""The domain authorization routes: shapes, ownership, paging, the contract's answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from certificate_api.domains.schemas import DomainOut, DomainPage
from core import validation
from tests.conftest import Customer
from tests.domains.conftest import Domains


def unique(label: str = "r") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.test"


def test_created_authorization_shows_its_challenges(
    make_customer: Callable[..., Customer], names_app: TestClient, settings: Any
) -> None:
    customer = make_customer()
    name = unique().upper()  # names are normalized
    response = names_app.post("/api/domains", json={"name": name}, headers=customer.auth)
    assert response.status_code == 201
    body = response.json()
    DomainOut.model_validate(body)  # the reply is what OpenAPI documents
    assert response.headers["location"] == f"/api/domains/{body['id']}"
    assert body["name"] == name.lower() and body["status"] == "pending"
    assert body["account_id"] == customer.id and body["include_subdomains"] is False
    assert body["validated_at"] is None and body["error"] is None
    http, dns = body["challenges"]
    thumbprint = validation.account_thumbprint(uuid.UUID(customer.id))
    assert http["key_authorization"] == f"{http['token']}.{thumbprint}"
    assert http["url"] == (
        f"http://{name.lower()}:{settings.validation_http_port}"
        f"/.well-known/acme-challenge/{http['token']}"
    )
    assert dns["record_name"] == f"_acme-challenge.{name.lower()}"
    assert dns["record_value"] == validation.dns01_record_value(dns["key_authorization"])
    # The same name and scope again: the same authorization, 200
    again = names_app.post("/api/domains", json={"name": name.lower()}, headers=customer.auth)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    wider = names_app.post(
        "/api/domains", json={"name": name, "include_subdomains": True}, headers=customer.auth
    )
    assert wider.status_code == 201 and wider.json()["id"] != body["id"]


def test_bad_requests_are_422(
    make_customer: Callable[..., Customer], names_app: TestClient
) -> None:
    customer = make_customer()
    for body in (
        {"name": "*.example.test"},
        {"name": "exa mple.test"},
        {"name": "127.0.0.1", "include_subdomains": True},
        {"name": "example.test", "extra": 1},
        {},
    ):
        response = names_app.post("/api/domains", json=body, headers=customer.auth)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    for name in ("co.uk", "github.io"):  # a public suffix itself is never authorized
        response = names_app.post("/api/domains", json={"name": name}, headers=customer.auth)
        assert response.status_code == 403
    assert names_app.get("/api/domains/not-a-uuid", headers=customer.auth).status_code == 422
    assert names_app.post("/api/domains", json={"name": "a.test"}).status_code == 401


def test_another_accounts_authorization_is_404(
    make_customer: Callable[..., Customer], domains: Domains, make_admin: Callable[[], Customer]
) -> None:
    owner, other, admin = make_customer(), make_customer(), make_admin()
    authz = domains.create(owner, unique())
    client = domains.client
    assert client.get(f"/api/domains/{authz['id']}", headers=other.auth).status_code == 404
    validate = client.post(
        f"/api/domains/{authz['id']}/validate", json={"type": "http-01"}, headers=other.auth
    )
    assert validate.status_code == 404
    assert client.delete(f"/api/domains/{authz['id']}", headers=other.auth).status_code == 404
    assert client.get(f"/api/domains/{authz['id']}", headers=admin.auth).status_code == 200
    # Only the owner asks for validation; an admin may delete
    by_admin = client.post(
        f"/api/domains/{authz['id']}/validate", json={"type": "http-01"}, headers=admin.auth
    )
    assert by_admin.status_code == 404
    assert client.delete(f"/api/domains/{authz['id']}", headers=admin.auth).status_code == 204
    assert client.get(f"/api/domains/{authz['id']}", headers=owner.auth).status_code == 404
    assert client.delete(f"/api/domains/{authz['id']}", headers=owner.auth).status_code == 404


def test_list_is_paged_newest_first_and_admins_filter_by_account(
    make_customer: Callable[..., Customer], domains: Domains, make_admin: Callable[[], Customer]
) -> None:
    owner, other, admin = make_customer(), make_customer(), make_admin()
    made = [domains.create(owner, unique())["id"] for _ in range(5)]
    domains.create(other, unique())
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = domains.client.get("/api/domains", params=query, headers=owner.auth).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    DomainPage.model_validate(page)
    mine_only = domains.client.get(
        "/api/domains", params={"account_id": other.id}, headers=owner.auth
    ).json()
    assert mine_only["items"] == []
    filtered = domains.client.get(
        "/api/domains", params={"account_id": owner.id}, headers=admin.auth
    ).json()
    assert [item["id"] for item in filtered["items"]] == made[::-1]
    bad = domains.client.get("/api/domains", params={"cursor": "nope"}, headers=owner.auth)
    assert bad.status_code == 422


def test_validate_answers_as_the_contract_says(
    make_customer: Callable[..., Customer], domains: Domains
) -> None:
    customer = make_customer()
    client = domains.client
    ip = domains.create(customer, "192.0.2.7")
    offered = client.post(
        f"/api/domains/{ip['id']}/validate", json={"type": "dns-01"}, headers=customer.auth
    )
    assert offered.status_code == 422  # an IP offers http-01 only
    valid = domains.prove(customer, unique())
    again = client.post(
        f"/api/domains/{valid['id']}/validate", json={"type": "http-01"}, headers=customer.auth
    )
    assert again.status_code == 200 and again.json() == valid  # unchanged
    failed = domains.create(customer, unique())
    domains.validate(customer, failed, "http-01")  # nothing served: invalid
    retry = client.post(
        f"/api/domains/{failed['id']}/validate", json={"type": "http-01"}, headers=customer.auth
    )
    assert retry.status_code == 409
    bad_type = client.post(
        f"/api/domains/{failed['id']}/validate", json={"type": "tls-alpn-01"}, headers=customer.auth
    )
    assert bad_type.status_code == 422
    # A new one may be asked for the same name once the old one is invalid
    fresh = domains.create(customer, failed["name"])
    assert fresh["id"] != failed["id"] and fresh["status"] == "pending"
