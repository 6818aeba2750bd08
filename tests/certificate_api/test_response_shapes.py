"""Replies are serialized directly; this holds them to the models the OpenAPI document shows."""

from __future__ import annotations

import re
from typing import Any

from certificate_api.certificates.schemas import CertificateCreated, CertificateOut, CertificatePage

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TIMES = ("not_before", "not_after", "created_at", "updated_at")


def check(model: Any, body: dict[str, Any]) -> None:
    parsed = model.model_validate(body)
    assert set(body) == set(type(parsed).model_fields), "fields differ from the documented model"
    for name in TIMES:
        assert RFC3339_Z.match(body[name]), (name, body[name])


def test_every_certificate_reply_matches_its_model(certs: Any, make_customer: Any) -> None:
    customer = make_customer()
    created = certs.post(
        "/api/certificates", json={"common_name": "shape.example.com"}, headers=customer.auth
    )
    assert created.status_code == 201
    assert created.headers["location"] == f"/api/certificates/{created.json()['id']}"
    check(CertificateCreated, created.json())
    path = f"/api/certificates/{created.json()['id']}"
    check(CertificateOut, certs.get(path, headers=customer.auth).json())
    held = certs.patch(path, json={"is_active": False}, headers=customer.auth)
    check(CertificateOut, held.json())
    revoked = certs.post(f"{path}/revoke", json={"reason": "superseded"}, headers=customer.auth)
    check(CertificateOut, revoked.json())
    page = certs.get("/api/certificates", headers=customer.auth).json()
    CertificatePage.model_validate(page)
    assert set(page) == {"items", "next_cursor"}
    for item in page["items"]:
        check(CertificateOut, item)
