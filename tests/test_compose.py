"""docker-compose.yml: valid against the Compose specification and wired as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_file_validates_against_the_compose_spec() -> None:
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_ports_healthchecks_and_dependencies() -> None:
    services = load()["services"]
    assert set(services) == {
        "postgres",
        "migrate",
        "account-api",
        "certificate-api",
        "worker",
        "proxy",
    }
    # Only the proxy is published; the services are reached through it.
    assert services["proxy"]["ports"] == ["5001:5001", "5002:5002"]
    assert [name for name, service in services.items() if "ports" in service] == ["proxy"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("postgres", "account-api", "certificate-api"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["ca-admin", "migrate"]
    for name in ("account-api", "certificate-api", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert "readyz" in " ".join(services["certificate-api"]["healthcheck"]["test"])
