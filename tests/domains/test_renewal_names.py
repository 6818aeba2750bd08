"""A renewal is an issuance: the names are checked again against the account's
authorizations, with NAME_AUTHORIZATION=required."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Customer


def test_renewal_after_the_authorization_was_deleted_is_refused(
    make_customer: Callable[..., Customer],
    grant: Callable[..., uuid.UUID],
    issue_as: Callable[..., Any],
    names_app: TestClient,
) -> None:
    customer = make_customer()
    name = f"renew-{uuid.uuid4().hex[:8]}.test"
    authz_id = grant(customer, name)
    issued = issue_as(customer, name)
    assert issued.status_code == 201, issued.text
    old = issued.json()
    renewed = names_app.post(f"/api/certificates/{old['id']}/renew", headers=customer.auth)
    assert renewed.status_code == 201, renewed.text  # still authorized: renewed

    gone = names_app.delete(f"/api/domains/{authz_id}", headers=customer.auth)
    assert gone.status_code == 204, gone.text
    refused = names_app.post(
        f"/api/certificates/{old['id']}/renew",
        json={"revoke_previous": True},
        headers=customer.auth,
    )
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [err["loc"] for err in refused.json()["errors"]] == [["body", "common_name", name]]
    kept = names_app.get(f"/api/certificates/{old['id']}", headers=customer.auth).json()
    assert kept["status"] == "active"  # nothing revoked, nothing issued
    listed = names_app.get("/api/certificates", headers=customer.auth).json()["items"]
    assert len(listed) == 2
