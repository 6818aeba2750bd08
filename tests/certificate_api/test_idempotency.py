"""Idempotency-Key: a retry gets the first response, never a second certificate."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from schema.base import utcnow
from schema.certificates import CertificateHistory, IdempotencyKey
from schema.events import Event
from tests.certificate_api.conftest import error_locs
from tests.conftest import Customer, LiveServices


def post(certs: Any, customer: Customer, key: str, **body: Any) -> Any:
    payload = {"common_name": "retry.example.com", **body}
    headers = {**customer.auth, "Idempotency-Key": key}
    return certs.post("/api/certificates", json=payload, headers=headers)


def test_same_key_and_body_replays_the_first_certificate_and_key(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    key = str(uuid.uuid4())
    first = post(certs, customer, key, key_type="ed25519")
    second = post(certs, customer, key, key_type="ed25519")
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["private_key_pem"] == first.json()["private_key_pem"]
    assert second.json()["certificate_pem"] == first.json()["certificate_pem"]
    assert certificate_rows(customer.id) == 1


def test_same_key_with_another_body_is_422_and_issues_nothing(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    key = str(uuid.uuid4())
    assert post(certs, customer, key).status_code == 201
    reused = post(certs, customer, key, dns_names=["other.example.com"])
    assert ["header", "Idempotency-Key"] in error_locs(reused)
    assert certificate_rows(customer.id) == 1


def test_an_empty_key_is_a_key_too(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    first = post(certs, customer, "", key_type="ed25519")
    assert first.status_code == 201
    assert post(certs, customer, "", key_type="ed25519").json()["id"] == first.json()["id"]
    reused = post(certs, customer, "", common_name="other.example.com")
    assert ["header", "Idempotency-Key"] in error_locs(reused)
    assert certificate_rows(customer.id) == 1


def test_without_a_key_each_post_issues_anew(
    certs: Any, make_customer: Any, issue: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    assert issue(customer)["id"] != issue(customer)["id"]
    assert certificate_rows(customer.id) == 2


def test_another_account_may_use_the_same_key(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    alice: Customer = make_customer()
    bob: Customer = make_customer()
    key = "order-42"
    for_alice = post(certs, alice, key)
    for_bob = post(certs, bob, key)
    assert for_alice.status_code == for_bob.status_code == 201
    assert for_alice.json()["id"] != for_bob.json()["id"]
    assert for_bob.json()["account_id"] == bob.id
    assert for_alice.json()["private_key_pem"] != for_bob.json()["private_key_pem"]
    assert certificate_rows(alice.id) == certificate_rows(bob.id) == 1
    # Bob's retry replays his own certificate, not Alice's.
    assert post(certs, bob, key).json()["id"] == for_bob.json()["id"]


def test_key_older_than_a_day_may_be_used_afresh(
    certs: Any, make_customer: Any, engine: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    key = str(uuid.uuid4())
    first = post(certs, customer, key)
    assert first.status_code == 201
    with engine.begin() as conn:
        conn.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.account_id == uuid.UUID(customer.id), IdempotencyKey.key == key)
            .values(created_at=utcnow() - timedelta(hours=25))
        )
    again = post(certs, customer, key)
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first.json()["id"]
    assert certificate_rows(customer.id) == 2


def test_revoke_with_the_same_key_replays_and_another_body_is_422(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    url = f"/api/certificates/{created['id']}/revoke"
    headers = {**customer.auth, "Idempotency-Key": "revoke-1"}
    first = certs.post(url, json={"reason": "keyCompromise"}, headers=headers)
    retry = certs.post(url, json={"reason": "keyCompromise"}, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    different = certs.post(url, json={"reason": "superseded"}, headers=headers)
    assert ["header", "Idempotency-Key"] in error_locs(different)
    # Without the key, a second revocation is the plain conflict it is.
    assert (
        certs.post(url, json={"reason": "keyCompromise"}, headers=customer.auth).status_code == 409
    )


def at_once(
    url: str, posts: list[tuple[str, dict[str, Any]]], headers: dict[str, str], method: str = "POST"
) -> list[httpx.Response]:
    """Send these requests (path, body) to the live server at the same moment, a thread each."""
    start = threading.Barrier(len(posts))
    responses: list[httpx.Response] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def send(path: str, body: dict[str, Any]) -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                start.wait(timeout=30)
                response = client.request(method, path, json=body, headers=headers)
            with lock:
                responses.append(response)
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=send, args=post) for post in posts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    return responses


def test_concurrent_retries_against_the_real_server_issue_once(
    live: LiveServices, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    headers = {**customer.auth, "Idempotency-Key": str(uuid.uuid4())}
    body = {"common_name": "concurrent.example.com", "key_type": "rsa-2048"}
    responses = at_once(live.certificate_url, [("/api/certificates", body)] * 10, headers)
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len({r.json()["private_key_pem"] for r in responses}) == 1
    assert certificate_rows(customer.id) == 1


def changes_recorded(engine: Any, certificate_id: str, action: str) -> tuple[int, int]:
    """History rows with this action, and events about the certificate, so far."""
    subject = uuid.UUID(certificate_id)
    with engine.connect() as conn:
        history = conn.execute(
            select(func.count())
            .select_from(CertificateHistory)
            .where(
                CertificateHistory.certificate_id == subject, CertificateHistory.action == action
            )
        ).scalar_one()
        events = conn.execute(
            select(func.count()).select_from(Event).where(Event.subject_id == subject)
        ).scalar_one()
    return history, events


def test_concurrent_revocations_revoke_once(
    live: LiveServices, make_customer: Any, issue: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    cert = issue(customer)
    path = f"/api/certificates/{cert['id']}/revoke"
    responses = at_once(
        live.certificate_url, [(path, {"reason": "keyCompromise"})] * 8, customer.auth
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 7, [
        r.text for r in responses
    ]
    assert changes_recorded(engine, cert["id"], "revoked") == (1, 2)  # created, revoked


def test_concurrent_holds_hold_once(
    live: LiveServices, make_customer: Any, issue: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    cert = issue(customer)
    path = f"/api/certificates/{cert['id']}"
    holds = [(path, {"is_active": False})] * 8
    responses = at_once(live.certificate_url, holds, customer.auth, method="PATCH")
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert {r.json()["status"] for r in responses} == {"inactive"}
    assert changes_recorded(engine, cert["id"], "held") == (1, 2)  # created, deactivated


def test_concurrent_revocations_with_one_key_answer_alike(
    live: LiveServices, make_customer: Any, issue: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    cert = issue(customer)
    headers = {**customer.auth, "Idempotency-Key": str(uuid.uuid4())}
    path = f"/api/certificates/{cert['id']}/revoke"
    responses = at_once(live.certificate_url, [(path, {"reason": "superseded"})] * 8, headers)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert changes_recorded(engine, cert["id"], "revoked") == (1, 2)


def test_one_key_on_two_certificates_at_once_is_422_for_the_second(
    live: LiveServices, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    first, second = issue(customer), issue(customer)
    headers = {**customer.auth, "Idempotency-Key": str(uuid.uuid4())}
    posts = [
        (f"/api/certificates/{c['id']}/revoke", {"reason": "superseded"}) for c in (first, second)
    ]
    responses = at_once(live.certificate_url, posts, headers)
    assert sorted(r.status_code for r in responses) == [200, 422], [r.text for r in responses]


def test_overlong_idempotency_key_is_422(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    response = post(certs, customer, "k" * 256)
    assert ["header", "Idempotency-Key"] in error_locs(response)
    assert certificate_rows(customer.id) == 0
