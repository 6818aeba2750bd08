"""Sign-ups per client address per hour, with the address behind a trusted proxy taken from
X-Forwarded-For."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from account_api import create_app
from tests.conftest import account_settings, unique_email


@pytest.fixture
def limited(database_url: str, var_dir: Path) -> Any:
    """An account service allowing 2 sign-ups an hour per address, behind 127.0.0.0/8."""
    settings = account_settings(
        database_url, var_dir, signup_rate_per_hour=2, trusted_proxies=["127.0.0.0/8"]
    )
    now = datetime.now(UTC)
    if now.minute == 59 and now.second > 50:  # start clear of the hour's end: windows are hourly
        time.sleep(61 - now.second)
    return create_app(settings).test_client()


def _sign_up(client: Any, peer: str, forwarded_for: str | None = None) -> Any:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post(
        "/api/accounts",
        json={"email": unique_email(), "password": "s3cret-passw0rd", "name": "Rate"},
        headers=headers,
        environ_base={"REMOTE_ADDR": peer},
    )


def test_a_third_sign_up_from_one_address_in_an_hour_is_429(limited: Any) -> None:
    client = "198.51.100.7"  # as the trusted proxy reports it
    assert _sign_up(limited, "127.0.0.1", client).status_code == 201
    assert _sign_up(limited, "127.0.0.2", f"203.0.113.9, {client}").status_code == 201
    refused = _sign_up(limited, "127.0.0.1", client)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert "2 sign-ups an hour" in refused.json["detail"]
    # Another client behind the same proxy is not affected.
    assert _sign_up(limited, "127.0.0.1", "198.51.100.8").status_code == 201


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(limited: Any) -> None:
    peer = "192.0.2.77"  # not a trusted proxy: its header is the client's own words
    assert _sign_up(limited, peer, "198.51.100.20").status_code == 201
    assert _sign_up(limited, peer, "198.51.100.21").status_code == 201
    assert _sign_up(limited, peer, "198.51.100.22").status_code == 429
