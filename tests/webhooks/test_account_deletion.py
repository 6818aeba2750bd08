"""Deleting an account revokes its certificates, destroys their keys and tells the receiver."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from cryptography import x509
from sqlalchemy import func, select

from schema.certificates import CertificateHistory, CertificateKey
from schema.events import Event
from tests.webhooks.conftest import World
from tests.webhooks.receiver import Receiver

COUNT = 50


def test_deleting_an_account_with_50_certificates(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    customer, bystander = world.customer(), world.customer()
    certs = [world.issue(customer, common_name=f"n{i}.example.com") for i in range(COUNT)]
    certs[0] = world.certs.patch(  # a held one is revoked too, and loses its hold reason
        f"/api/certificates/{certs[0]['id']}", json={"is_active": False}, headers=customer.auth
    ).json()
    survivor = world.issue(bystander)
    ids = [c["id"] for c in certs]
    uuids = [uuid.UUID(i) for i in ids]
    with world.engine.connect() as conn:
        held_keys = conn.scalar(
            select(func.count()).where(CertificateKey.certificate_id.in_(uuids))
        )
    assert held_keys == COUNT

    deleted = world.accounts.delete(f"/api/accounts/{customer.id}", headers=customer.auth)
    assert deleted.status_code == 204

    # The next CRL lists all 50 with cessationOfOperation, and not the bystander's.
    crl = x509.load_der_x509_crl(world.certs.get("/api/ca/crl").content)
    reasons = {
        format(entry.serial_number, "x"): entry.extensions.get_extension_for_class(
            x509.CRLReason
        ).value.reason
        for entry in crl
    }
    for cert in certs:
        assert reasons[cert["serial_number"]] is x509.ReasonFlags.cessation_of_operation
    assert survivor["serial_number"] not in reasons

    # The keys are gone: no rows, and the private-key route says 410 (to an admin; the
    # owner's token no longer works at all).
    with world.engine.connect() as conn:
        left = conn.scalar(select(func.count()).where(CertificateKey.certificate_id.in_(uuids)))
        history = conn.scalar(
            select(func.count()).where(
                CertificateHistory.certificate_id.in_(uuids),
                CertificateHistory.reason == "cessationOfOperation",
            )
        )
    assert left == 0
    assert history == COUNT
    admin = world.admin()
    for cert_id in ids[:5]:
        answer = world.certs.get(f"/api/certificates/{cert_id}/private-key", headers=admin.auth)
        assert answer.status_code == 410, answer.text
    owner = world.certs.get(f"/api/certificates/{ids[0]}/private-key", headers=customer.auth)
    assert owner.status_code == 401
    fetched = world.certs.get(f"/api/certificates/{ids[1]}", headers=admin.auth).json()
    assert (fetched["status"], fetched["has_private_key"]) == ("revoked", False)

    # The receiver gets every event: 50 created, 1 deactivated, 50 revoked, 1 account.deleted.
    run_worker(receiver.url)
    expected = Counter(
        {
            "certificate.created": COUNT + 1,
            "certificate.deactivated": 1,
            "certificate.revoked": COUNT,
            "account.deleted": 1,
        }
    )
    total = sum(expected.values())
    receiver.wait_for(lambda got: len({d.event_id for d in got}) >= total, seconds=60)
    types = Counter(
        d.payload["type"] for d in {d.event_id: d for d in receiver.received()}.values()
    )
    assert types == expected
    revoked = [
        d.payload["data"] for d in receiver.received() if d.payload["type"] == "certificate.revoked"
    ]
    assert {r["certificate_id"] for r in revoked} == set(ids)
    assert {(r["reason"], r["status"]) for r in revoked} == {("cessationOfOperation", "revoked")}
    with world.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Event)) == total


def test_deleting_again_is_404_and_revokes_nothing_more(world: World) -> None:
    customer = world.customer()
    world.issue(customer)
    admin = world.admin()
    assert (
        world.accounts.delete(f"/api/accounts/{customer.id}", headers=admin.auth).status_code == 204
    )
    with world.engine.connect() as conn:
        before = conn.scalar(select(func.count()).select_from(Event))
    again = world.accounts.delete(f"/api/accounts/{customer.id}", headers=admin.auth)
    assert again.status_code == 404
    with world.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Event)) == before
