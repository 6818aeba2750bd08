"""Public URLs follow HOST and the ports unless set; a wildcard HOST needs PUBLIC_BASE_URL."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from account_api.settings import AccountSettings
from ca_admin.run import service_commands
from certificate_api.settings import CertificateSettings
from schema.settings import CommonSettings
from tests.conftest import free_port


def test_default_urls_follow_host_and_ports() -> None:
    settings = CertificateSettings(
        _env_file=None,  # type: ignore[call-arg]
        account_api_port=7101,
        certificate_api_port=7102,
    )
    assert settings.public_base_url == "http://127.0.0.1:7102"
    assert settings.account_api_url == "http://127.0.0.1:7101"
    v6 = AccountSettings(_env_file=None, host="::1")  # type: ignore[call-arg]
    assert v6.public_base_url == "http://[::1]:5002"
    assert v6.account_api_url == "http://[::1]:5001"
    given = CertificateSettings(
        _env_file=None,  # type: ignore[call-arg]
        public_base_url="https://ca.example.com/",
        account_api_url="https://accounts.example.com",
    )
    assert given.public_base_url == "https://ca.example.com"
    assert given.account_api_url == "https://accounts.example.com"


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_host_needs_a_public_base_url(host: str) -> None:
    secret = "mk-test:" + "A" * 43 + "="
    with pytest.raises(ValidationError) as refused:
        CertificateSettings(_env_file=None, host=host, master_keys=secret)  # type: ignore[call-arg]
    assert "PUBLIC_BASE_URL" in str(refused.value)
    assert secret not in str(refused.value)  # settings errors never show the values read
    given = CertificateSettings(
        _env_file=None,  # type: ignore[call-arg]
        host=host,
        public_base_url="https://ca.example.com",
    )
    assert given.public_base_url == "https://ca.example.com"


def test_the_certificate_service_refuses_to_start_on_a_wildcard_host_without_public_url(
    tmp_path: Path,
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PUBLIC_BASE_URL", "ACCOUNT_API_URL")
    }
    env.update({"HOST": "0.0.0.0", "VAR_DIR": str(tmp_path), "DATABASE_URL": ""})
    result = subprocess.run(
        service_commands(CommonSettings(_env_file=None, certificate_api_port=free_port()), 1)[
            "certificate-api"
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL" in result.stdout + result.stderr
