"""ACME resources as the order, challenge and finalization tests reach them: raw newOrder and
POST-as-GET, ready orders on granted names, the customer's domain authorizations."""

from __future__ import annotations

from typing import Any

from acme import messages
from acme.crypto_util import make_csr
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.acme_protocol.conftest import Account, Acme, csr_for, unique_name
from tests.conftest import Customer


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


def ready_order(acme: Acme, account: Account) -> tuple[str, dict[str, Any]]:
    """A ready order for a granted name: the name and the order."""
    name = unique_name()
    acme.grant(account.customer, name)
    order = new_order(acme, account, dns(name)).json()
    assert order["status"] == "ready"
    return name, order


def messages_order(acme: Acme, account: Account, response: Any) -> messages.OrderResource:
    """The library's resource for an order made raw (its CSR for the order's names)."""
    body = messages.Order.from_json(response.json())
    csr, _key = csr_for([i.value for i in body.identifiers])
    return messages.OrderResource(body=body, uri=response.headers["Location"], csr_pem=csr)


def csr_der(key: Any, names: list[str]) -> bytes:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return x509.load_pem_x509_csr(make_csr(pem, names)).public_bytes(serialization.Encoding.DER)
