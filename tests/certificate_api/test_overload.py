"""Overload: past MAX_IN_FLIGHT the service answers 503 with Retry-After at once, never hangs."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ca_admin.run import metrics_env, service_commands
from schema.settings import CommonSettings
from tests.conftest import Customer, free_port, wait_until_up


def test_requests_beyond_the_limit_get_503_with_retry_after(
    database_url: str, var_dir: Path, make_customer: Any, tmp_path: Path
) -> None:
    customer: Customer = make_customer()
    port = free_port()
    command = service_commands(CommonSettings(_env_file=None, certificate_api_port=port), 1)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "MAX_IN_FLIGHT": "4",
        "MAX_SLOW_KEY_GENERATIONS": "64",  # this test is about MAX_IN_FLIGHT alone
        "KEY_POOL_FILL_ON_START": "false",
        "NAME_AUTHORIZATION": "open",
        "KEY_POOL_SIZES": "{}",
        **metrics_env(tmp_path, "certificate-api"),
    }
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.Popen(
            command["certificate-api"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)

        def issue(n: int) -> httpx.Response:
            # rsa-3072 keys are made on demand here: each request takes a while.
            return httpx.post(
                f"{url}/api/certificates",
                json={"common_name": f"load{n}.example.com", "key_type": "rsa-3072"},
                headers=customer.auth,
                timeout=120,
            )

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(issue, range(32)))
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) <= {201, 503}, statuses
        assert statuses[201] >= 4 and statuses[503] >= 1, statuses
        for answer in answers:
            if answer.status_code == 503:
                assert answer.headers["Retry-After"] == "1"
                assert answer.headers["content-type"] == "application/problem+json"
        assert httpx.get(f"{url}/healthz").status_code == 200  # still answering afterwards
    finally:
        proc.terminate()
        proc.wait(timeout=30)
