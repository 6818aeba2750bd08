"""Each service's OpenAPI document against its real answers, with schemathesis.

The fuzzer sends what the document allows and what it does not (malformed JSON, missing
bodies, wrong types, no token) and checks that every answer is one the document lists, of
the media type and shape it gives, that bad input is refused with a 4xx and never a 5xx,
and that an operation needing a token refuses a request without one. A short seeded run
keeps this true; `FUZZ_SECONDS=120` runs longer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ca_admin.run import metrics_env, service_commands
from schema.settings import CommonSettings
from tests.conftest import FAST_ARGON2, Databases, free_port, unique_email, wait_until_up

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
    ]
)
SECONDS = int(os.environ.get("FUZZ_SECONDS", "30"))
SEED = int(os.environ.get("FUZZ_SEED", "20261127"))
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fuzzed(
    databases: Databases, var_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Both services on a database of their own (the fuzzer fills it with accounts and
    certificates), and a customer's token."""
    database_url = databases.create()
    account_port, certificate_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "ACCOUNT_API_PORT": str(account_port),
        "CERTIFICATE_API_PORT": str(certificate_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{certificate_port}",
        "ACCOUNT_API_URL": f"http://127.0.0.1:{account_port}",
        "KEY_POOL_FILL_ON_START": "false",
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
    }
    settings = CommonSettings(
        _env_file=None,
        account_api_port=account_port,  # type: ignore[call-arg]
        certificate_api_port=certificate_port,
    )
    commands = service_commands(settings, workers=1)
    logs = tmp_path_factory.mktemp("fuzz-logs")
    procs = []
    for name in ("account-api", "certificate-api"):
        with (logs / f"{name}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    commands[name],
                    env={**env, **metrics_env(logs, name)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    account_url = f"http://127.0.0.1:{account_port}"
    certificate_url = f"http://127.0.0.1:{certificate_port}"
    try:
        wait_until_up(account_url, procs[0])
        wait_until_up(certificate_url, procs[1])
        email, password = unique_email("fuzz"), "s3cret-passw0rd"
        created = httpx.post(
            f"{account_url}/api/accounts",
            json={"email": email, "password": password, "name": "Fuzz"},
        )
        assert created.status_code == 201, created.text
        token = httpx.post(
            f"{account_url}/api/auth/token", json={"email": email, "password": password}
        )
        assert token.status_code == 200, token.text
        yield {
            "account": account_url,
            "certificate": certificate_url,
            "token": token.json()["access_token"],
            "logs": str(logs),
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_schemathesis(base_url: str, token: str, seconds: int, report: Path) -> Any:
    """`st run` over the service's own /openapi.json, as an outside tester would."""
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-time",
        str(seconds),
        "--seed",
        str(SEED),
        "--header",
        f"Authorization: Bearer {token}",
        "--generation-database",
        "none",
        "--workers",
        "1",  # two have tripped over a thread-safety error inside hypothesis
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
    ]
    # Run from the report directory: schemathesis keeps a cache where it runs.
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + 600,
        env=env,
        cwd=report,
    )


@pytest.mark.parametrize("service", ["account", "certificate"])
def test_schemathesis_finds_no_gap_between_document_and_answers(
    fuzzed: dict[str, str], service: str, tmp_path: Path
) -> None:
    result = run_schemathesis(fuzzed[service], fuzzed["token"], SECONDS, tmp_path)
    # Generated bodies can be huge: keep each line of the report short.
    report = "\n".join(line[:400] for line in (result.stdout + result.stderr).splitlines())
    assert result.returncode == 0, report[-30000:]
