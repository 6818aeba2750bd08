"""Races that only a real server can decide."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from account_api import create_app
from tests.conftest import account_settings, postgres_only, unique_email


@postgres_only
def test_two_concurrent_signups_with_one_email_give_one_201_and_one_409(
    database_url: str, var_dir: Path
) -> None:
    apps = [create_app(account_settings(database_url, var_dir)) for _ in range(2)]
    for _ in range(5):  # several rounds, so the race is really run
        email = unique_email("race")
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def sign_up(
            app: Any,
            address: str = email,
            barrier: threading.Barrier = barrier,
            statuses: list[int] = statuses,
        ) -> None:
            client = app.test_client()
            barrier.wait()
            response = client.post(
                "/api/accounts",
                json={"email": address, "password": "long enough pw", "name": "Racer"},
            )
            statuses.append(response.status_code)

        threads = [threading.Thread(target=sign_up, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201, 409]
