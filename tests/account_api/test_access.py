"""Who sees and deletes which account; what deletion does."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from schema.accounts import Account
from schema.events import Event
from tests.conftest import Customer


def test_me_and_own_id(accounts: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    me = accounts.get("/api/accounts/me", headers=customer.auth)
    own = accounts.get(f"/api/accounts/{customer.id}", headers=customer.auth)
    assert me.status_code == own.status_code == 200
    assert me.json == own.json and me.json["email"] == customer.email


def test_another_accounts_id_is_404_for_read_and_delete(accounts: Any, make_customer: Any) -> None:
    alice: Customer = make_customer()
    bob: Customer = make_customer()
    assert accounts.get(f"/api/accounts/{bob.id}", headers=alice.auth).status_code == 404
    assert accounts.delete(f"/api/accounts/{bob.id}", headers=alice.auth).status_code == 404
    # ...and looks exactly like an id that does not exist.
    missing = accounts.get(f"/api/accounts/{uuid.uuid4()}", headers=alice.auth)
    other = accounts.get(f"/api/accounts/{bob.id}", headers=alice.auth)
    assert missing.json == other.json
    assert accounts.get(f"/api/accounts/{bob.id}", headers=bob.auth).status_code == 200


def test_bad_uuid_in_path_is_422(accounts: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    response = accounts.get("/api/accounts/12345", headers=customer.auth)
    assert response.status_code == 422 and response.json["errors"][0]["loc"] == ["id"]


def test_admin_reads_and_deletes_any_account(
    accounts: Any, make_customer: Any, make_admin: Any
) -> None:
    admin: Customer = make_admin()
    customer: Customer = make_customer()
    read = accounts.get(f"/api/accounts/{customer.id}", headers=admin.auth)
    assert read.status_code == 200 and read.json["email"] == customer.email
    assert accounts.get("/api/accounts/me", headers=admin.auth).json["role"] == "admin"
    assert accounts.delete(f"/api/accounts/{customer.id}", headers=admin.auth).status_code == 204
    assert accounts.get("/api/accounts/me", headers=customer.auth).status_code == 401


def test_delete_refuses_tokens_frees_the_email_and_keeps_the_row(
    accounts: Any, make_customer: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    deleted = accounts.delete(f"/api/accounts/{customer.id}", headers=customer.auth)
    assert deleted.status_code == 204
    assert deleted.data == b"" and "Content-Type" not in deleted.headers
    assert accounts.get("/api/accounts/me", headers=customer.auth).status_code == 401
    again = make_customer(email=customer.email)
    assert again.id != customer.id
    # The deleted account's old token does not open the new account either.
    assert accounts.get("/api/accounts/me", headers=customer.auth).status_code == 401
    with engine.connect() as conn:
        rows = conn.execute(
            select(Account.id, Account.deleted_at).where(
                Account.email_key == customer.email.lower()
            )
        ).all()
    assert {str(row.id) for row in rows} == {customer.id, again.id}
    assert [str(row.id) for row in rows if row.deleted_at is not None] == [customer.id]


def test_deleting_again_is_404(accounts: Any, make_customer: Any, make_admin: Any) -> None:
    admin: Customer = make_admin()
    customer: Customer = make_customer()
    assert accounts.delete(f"/api/accounts/{customer.id}", headers=admin.auth).status_code == 204
    assert accounts.delete(f"/api/accounts/{customer.id}", headers=admin.auth).status_code == 404


def test_delete_records_one_account_deleted_event(
    accounts: Any, make_customer: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    accounts.delete(f"/api/accounts/{customer.id}", headers=customer.auth)
    with engine.connect() as conn:
        events = conn.execute(
            select(Event.type, Event.payload).where(Event.subject_id == uuid.UUID(customer.id))
        ).all()
    assert [event.type for event in events] == ["account.deleted"]
    payload = events[0].payload
    assert payload["type"] == "account.deleted" and payload["data"]["account_id"] == customer.id
