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


# What each container may hold: a service that can mint tokens cannot read private keys
# at rest, and the other way round.
OWN_SECRETS = {
    "migrate": set(),
    "account-api": {"token_private_key"},
    "certificate-api": {"token_public_key", "master_keys"},
    "worker": {"webhook_secret"},
}
SECRET_SETTINGS = {
    "token_private_key": "TOKEN_PRIVATE_KEY_FILE",
    "token_public_key": "TOKEN_PUBLIC_KEY_FILE",
    "master_keys": "MASTER_KEYS_FILE",
    "webhook_secret": "WEBHOOK_SECRET_FILE",
}
SECRET_VARIABLES = {
    *SECRET_SETTINGS.values(),
    *(name.removesuffix("_FILE") for name in SECRET_SETTINGS.values()),
}


def test_each_container_gets_only_its_own_secrets() -> None:
    compose = load()
    services = compose["services"]
    assert set(compose["secrets"]) == set(SECRET_SETTINGS)
    for name, own in OWN_SECRETS.items():
        service = services[name]
        # A shared .env would hand every container every secret.
        assert "env_file" not in service, name
        assert set(service.get("secrets", [])) == own, name
        environment = service.get("environment", {})
        assert {key for key in environment if key in SECRET_VARIABLES} == {
            SECRET_SETTINGS[secret] for secret in own
        }, name
        for secret in own:
            assert environment[SECRET_SETTINGS[secret]] == f"/run/secrets/{secret}", name
        # Nor may a directory of generated secrets be shared between containers.
        assert not service.get("volumes"), name
