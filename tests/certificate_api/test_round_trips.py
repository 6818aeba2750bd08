"""Round trips to PostgreSQL per certificate operation: part of the design, held to a budget.

The budgets are those measured before the core was split out of the routes, and are written
in docs/architecture.md; a change that adds a round trip to a hot path fails here.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tests.certificate_api.conftest import RoundTrips
from tests.certificate_api.test_validation import make_csr
from tests.conftest import postgres_only

pytestmark = postgres_only

NEW = {"common_name": "trips.example.com"}
# Measured before the core was split out of the routes (docs/architecture.md explains each).
BUDGETS = {
    "issue": 3,  # the account check; the batch (share lock ... event) read once; COMMIT
    "issue, new key": 4,  # + the Idempotency-Key look-up
    "issue, replay": 4,  # account, remembered key, certificate, sealed key
    "issue, CSR": 4,  # + whether the CSR's key was reported compromised
    "fetch": 1,  # account and certificate in one statement
    "list": 2,  # account; the page
    "hold": 3,  # BEGIN + locked read; the batch of changes; COMMIT
    "release": 3,
    "private key": 2,  # account and certificate; the sealed key
    "revoke": 3,  # as hold
}


def test_issue_fetch_list_hold_revoke_stay_within_their_budgets(
    certs: Any, make_customer: Any, round_trips: RoundTrips
) -> None:
    customer = make_customer()
    auth = customer.auth
    certs.post("/api/certificates", json=NEW, headers=auth)  # warm the pool and the caches
    seen: dict[str, int] = {}

    def measure(name: str, call: Any) -> Any:
        start = round_trips.count
        response = call()
        seen[name] = round_trips.count - start
        return response

    created = measure("issue", lambda: certs.post("/api/certificates", json=NEW, headers=auth))
    path = f"/api/certificates/{created.json()['id']}"
    keyed = {**auth, "Idempotency-Key": "trips-1"}
    measure("issue, new key", lambda: certs.post("/api/certificates", json=NEW, headers=keyed))
    measure("issue, replay", lambda: certs.post("/api/certificates", json=NEW, headers=keyed))
    csr = {
        "common_name": "trips.example.com",
        "csr": make_csr(ec.generate_private_key(ec.SECP256R1()), "trips.example.com"),
    }
    measure("issue, CSR", lambda: certs.post("/api/certificates", json=csr, headers=auth))
    measure("fetch", lambda: certs.get(path, headers=auth))
    measure("list", lambda: certs.get("/api/certificates", headers=auth))
    measure("hold", lambda: certs.patch(path, json={"is_active": False}, headers=auth))
    measure("release", lambda: certs.patch(path, json={"is_active": True}, headers=auth))
    measure("private key", lambda: certs.get(f"{path}/private-key", headers=auth))
    revoke = {"reason": "superseded"}
    measure("revoke", lambda: certs.post(f"{path}/revoke", json=revoke, headers=auth))
    over = {name: (used, BUDGETS[name]) for name, used in seen.items() if used > BUDGETS[name]}
    assert not over, f"(used, budget) past budget: {over}"
