"""Fixtures of the ACME tests: the product running as real processes (both services and the
worker, which checks the challenges), a DNS server the validator asks, a webhook receiver,
and the real ACME clients (certbot, lego) driven as subprocesses.

One stack serves the whole session: every test uses names of its own (`*.test`, random),
so no test sees another's authorizations.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from standardwebhooks import Webhook

from tests.conftest import (
    FAST_ARGON2,
    Customer,
    Databases,
    free_port,
    unique_email,
    wait_until_up,
)
from tests.domains.servers import Zone, start_dns
from tests.webhooks.receiver import Delivery, Receiver

BIN = Path(sys.executable).parent
CERTBOT = BIN / "certbot"
LEGO = shutil.which("lego") or "lego"
OPENSSL = shutil.which("openssl") or "openssl"
HOOK = Path(__file__).with_name("dns_hook.py")
CLIENT_TIMEOUT = 300  # a hung client fails the test instead of the whole run


def random_base() -> str:
    """A name of its own for one test, under `.test` (the DNS server answers 127.0.0.1)."""
    return f"{uuid.uuid4().hex[:12]}.test"


class ZoneControl:
    """A small HTTP endpoint in this process through which the clients' hooks (processes of
    their own) add and remove TXT records in the test DNS server's zone.

    POST / {"action": "add"|"remove", "name": FQDN, "value": TXT} -> 204.
    """

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, str]] = []
        control = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                control.apply(body["action"], body["name"], body["value"])
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def apply(self, action: str, name: str, value: str) -> None:
        name = name.rstrip(".").lower()
        with self.lock:
            self.log.append((action, name, value))
            values = [v for v in self.zone.txt.get(name, []) if v != value]
            if action == "add":
                values.append(value)
            # A new list each time: the DNS server's thread may be reading the old one.
            if values:
                self.zone.txt[name] = values
            else:
                self.zone.txt.pop(name, None)

    def added(self, name: str) -> list[str]:
        """Every value a hook published at `name` (withdrawn since or not)."""
        with self.lock:
            return [v for action, n, v in self.log if action == "add" and n == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class AcmeDns:
    zone: Zone
    port: int
    control: ZoneControl

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def acme_dns() -> Iterator[AcmeDns]:
    zone, server, port = start_dns()
    control = ZoneControl(zone)
    yield AcmeDns(zone, port, control)
    control.close()
    server.stop()


@pytest.fixture(scope="session")
def acme_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@dataclass
class AcmeStack:
    """Both services and the worker, running as real processes on 127.0.0.1."""

    account_url: str
    certificate_url: str
    env: dict[str, str]
    log_path: Path
    dns: AcmeDns
    http_port: int
    tls_port: int
    receiver: Receiver
    webhook_secret: str
    ca_dir: Path  # root.pem, intermediate.pem (the issuing CA and any between it and the root)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def directory_url(self) -> str:
        return f"{self.certificate_url}/acme/directory"

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def alive(self) -> str:
        """Which processes are still running (for failure messages)."""
        return ", ".join(
            f"{name}: {'up' if proc.poll() is None else f'exited {proc.returncode}'}"
            for name, proc in self.procs.items()
        )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def acme_live(
    databases: Databases,
    tmp_path_factory: pytest.TempPathFactory,
    acme_dns: AcmeDns,
    acme_receiver: Receiver,
) -> Iterator[AcmeStack]:
    """The services and the worker, started with the commands `make run` uses, on a database
    of their own; names must be proved (NAME_AUTHORIZATION=required), the validator may
    reach 127.0.0.1, and events go to the receiver."""
    from ca_admin.run import metrics_env, service_commands
    from schema.settings import CommonSettings

    database_url = databases.create()
    var_dir = tmp_path_factory.mktemp("acme-var")
    account_port, certificate_port = free_port(), free_port()
    http_port, tls_port = free_port(), free_port()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    inherited = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PUBLIC_BASE_URL", "ACCOUNT_API_URL", "HOST")
    }
    env = {
        **inherited,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "ACCOUNT_API_PORT": str(account_port),
        "CERTIFICATE_API_PORT": str(certificate_port),
        "KEY_POOL_FILL_ON_START": "false",
        "NAME_AUTHORIZATION": "required",
        "VALIDATION_HTTP_PORT": str(http_port),
        "VALIDATION_TLS_PORT": str(tls_port),
        "VALIDATION_DNS_SERVERS": acme_dns.resolver,
        "VALIDATION_DENY_NETWORKS": "",
        "VALIDATION_TIMEOUT_SECONDS": "5",
        "WEBHOOK_URL": acme_receiver.url,
        "WEBHOOK_SECRET": secret,
        "WEBHOOK_POLL_SECONDS": "0.05",
        "WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
        "WEBHOOK_BACKOFF_CAP_SECONDS": "0.5",
        "CRL_REFRESH_SECONDS": "0",
        "SIGNUP_RATE_PER_HOUR": str(10**6),
        "MAX_SLOW_KEY_GENERATIONS": "64",
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
    }
    settings = CommonSettings(
        _env_file=None,
        account_api_port=account_port,  # type: ignore[call-arg]
        certificate_api_port=certificate_port,
    )
    commands = service_commands(settings, workers=1)
    log_path = tmp_path_factory.mktemp("acme-logs") / "services.log"
    log = log_path.open("wb")
    procs = {
        name: subprocess.Popen(
            commands[name],
            env={**env, **metrics_env(var_dir, name)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for name in ("account-api", "certificate-api", "worker")
    }
    ca_dir = tmp_path_factory.mktemp("acme-ca")
    stack = AcmeStack(
        f"http://127.0.0.1:{account_port}",
        f"http://127.0.0.1:{certificate_port}",
        env,
        log_path,
        acme_dns,
        http_port,
        tls_port,
        acme_receiver,
        secret,
        ca_dir,
        procs,
    )
    try:
        wait_until_up(stack.account_url, procs["account-api"])
        wait_until_up(stack.certificate_url, procs["certificate-api"])
        assert procs["worker"].poll() is None, stack.log_tail()
        chain = httpx.get(f"{stack.certificate_url}/api/ca/certificates", timeout=10)
        assert chain.status_code == 200, chain.text
        *issuers, root = x509.load_pem_x509_certificates(chain.content)
        pem = serialization.Encoding.PEM
        (ca_dir / "root.pem").write_bytes(root.public_bytes(pem))
        (ca_dir / "intermediate.pem").write_bytes(b"".join(c.public_bytes(pem) for c in issuers))
        (ca_dir / "issuer.pem").write_bytes(issuers[0].public_bytes(pem))
        yield stack
    finally:
        stop(list(procs.values()))
        log.close()


def sign_up(stack: AcmeStack) -> Customer:
    """A customer of the live account service, logged in."""
    email, password = unique_email("acme"), "acme-client-pw"
    created = httpx.post(
        f"{stack.account_url}/api/accounts",
        json={"email": email, "password": password, "name": "ACME Customer"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    token = httpx.post(
        f"{stack.account_url}/api/auth/token",
        json={"email": email, "password": password},
        timeout=30,
    )
    assert token.status_code == 200, token.text
    return Customer(created.json()["id"], email, password, token.json()["access_token"])


@pytest.fixture(scope="session")
def acme_customer(acme_live: AcmeStack) -> Customer:
    return sign_up(acme_live)


Eab = Callable[[Customer], tuple[str, str]]


@pytest.fixture(scope="session")
def eab(acme_live: AcmeStack) -> Eab:
    """`eab(customer) -> (key_id, hmac_key)`: a fresh external account binding."""

    def make(customer: Customer) -> tuple[str, str]:
        response = httpx.post(
            f"{acme_live.certificate_url}/api/acme/eab", headers=customer.auth, timeout=30
        )
        assert response.status_code == 201, (
            f"POST /api/acme/eab -> {response.status_code} {response.text}"
        )
        body = response.json()
        key_id, hmac_key = body["key_id"], body["hmac_key"]
        assert isinstance(key_id, str) and key_id, body
        raw = base64.urlsafe_b64decode(hmac_key + "=" * (-len(hmac_key) % 4))
        assert len(raw) == 32 and "=" not in hmac_key, body
        return key_id, hmac_key

    return make


def hook_env(stack: AcmeStack) -> dict[str, str]:
    """What a client's DNS hook needs to reach the zone."""
    return {**os.environ, "ACME_TEST_ZONE_URL": stack.dns.control.url}


def failure(result: subprocess.CompletedProcess[str], stack: AcmeStack, extra: str = "") -> str:
    return (
        f"{shlex.join(result.args)}\nexit {result.returncode}\n"
        f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}\n"
        f"{extra}--- services ({stack.alive()})\n{stack.log_tail()}"
    )


def certbot_eab(key_id: str, hmac_key: str) -> list[str]:
    """certbot's binding options; with "=", as a base64url key may start with "-"."""
    return [f"--eab-kid={key_id}", f"--eab-hmac-key={hmac_key}"]


class Certbot:
    """certbot as a subprocess, its config, work and logs directories under one root."""

    def __init__(self, stack: AcmeStack) -> None:
        self.stack = stack

    def __call__(
        self, args: list[str], root: Path, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [
            str(CERTBOT),
            *args,
            "--config-dir",
            str(root / "config"),
            "--work-dir",
            str(root / "work"),
            "--logs-dir",
            str(root / "logs"),
            "--server",
            self.stack.directory_url,
            "--non-interactive",
            "--agree-tos",
            "--no-eff-email",
        ]
        result = subprocess.run(
            command,
            env=hook_env(self.stack),
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
        if check:
            assert result.returncode == 0, failure(
                result, self.stack, f"--- certbot log\n{self.log_tail(root)}\n"
            )
        return result

    @staticmethod
    def log_tail(root: Path, lines: int = 120) -> str:
        log = root / "logs" / "letsencrypt.log"
        if not log.exists():
            return "(no certbot log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def hook(self, which: str) -> str:
        """A manual hook command: publishes (auth) or withdraws (cleanup) the TXT record."""
        return shlex.join([sys.executable, str(HOOK), f"certbot-{which}"])


@pytest.fixture(scope="session")
def run_certbot(acme_live: AcmeStack) -> Certbot:
    return Certbot(acme_live)


@pytest.fixture
def certbot_root(tmp_path: Path, run_certbot: Certbot, eab: Eab, acme_customer: Customer) -> Path:
    """A certbot directory with an account registered through a fresh EAB."""
    key_id, hmac_key = eab(acme_customer)
    run_certbot(
        ["register", *certbot_eab(key_id, hmac_key), "-m", acme_customer.email],
        tmp_path,
    )
    return tmp_path


class Lego:
    """lego as a subprocess; each `--path` gets an account (registered through a fresh EAB
    of the customer) on its first run."""

    def __init__(self, stack: AcmeStack, customer: Customer, eab: Eab, exec_path: Path) -> None:
        self.stack, self.customer, self.eab, self.exec_path = stack, customer, eab, exec_path
        self.bindings: dict[Path, tuple[str, str]] = {}

    def __call__(
        self, args: list[str], path: Path, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if path not in self.bindings:
            self.bindings[path] = self.eab(self.customer)
        key_id, hmac_key = self.bindings[path]
        command = [
            LEGO,
            "--server",
            self.stack.directory_url,
            "--path",
            str(path),
            "--accept-tos",
            "--email",
            self.customer.email,
            "--eab",
            # "=": a base64url key may start with "-".
            f"--kid={key_id}",
            f"--hmac={hmac_key}",
            *args,
        ]
        env = {
            **hook_env(self.stack),
            "EXEC_PATH": str(self.exec_path),
            "EXEC_SEQUENCE_INTERVAL": "1",
            "EXEC_POLLING_INTERVAL": "1",
            "EXEC_PROPAGATION_TIMEOUT": "30",
        }
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False
        )
        if check:
            assert result.returncode == 0, failure(result, self.stack)
        return result

    def dns_args(self) -> list[str]:
        """dns-01 through the exec provider, resolved by the test DNS server only (the zone
        has no NS records, so the check against authoritative servers is off)."""
        return ["--dns", "exec", "--dns.resolvers", self.stack.dns.resolver, "--dns.disable-cp"]


@pytest.fixture(scope="session")
def run_lego(
    acme_live: AcmeStack,
    acme_customer: Customer,
    eab: Eab,
    tmp_path_factory: pytest.TempPathFactory,
) -> Lego:
    # EXEC_PATH is run without a shell: a wrapper that runs the hook with this interpreter.
    wrapper = tmp_path_factory.mktemp("lego-exec") / "dns-hook"
    wrapper.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(HOOK))} "$@"\n'
    )
    wrapper.chmod(0o755)
    return Lego(acme_live, acme_customer, eab, wrapper)


# --- what every issuance and revocation is checked for ------------------------------------


def certificates_in(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def san_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=60, check=False)


def verify_chain(stack: AcmeStack, leaf_path: Path) -> None:
    """`openssl verify` of the leaf up to the CA's root, as a TLS server certificate."""
    leaf = certificates_in(leaf_path)[0]
    alone = leaf_path.with_name(leaf_path.name + ".leaf.pem")
    alone.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    result = openssl(
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        str(stack.ca_dir / "root.pem"),
        "-untrusted",
        str(stack.ca_dir / "intermediate.pem"),
        str(alone),
    )
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), (
        result.stdout + result.stderr
    )


def rest_certificate(stack: AcmeStack, customer: Customer, serial: int) -> dict[str, Any]:
    """The customer's certificate with this serial, as `GET /api/certificates` lists it."""
    response = httpx.get(
        f"{stack.certificate_url}/api/certificates",
        params={"limit": 1000},
        headers=customer.auth,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    found = [item for item in items if int(item["serial_number"], 16) == serial]
    assert len(found) == 1, (
        f"serial {serial:x} not in the customer's list: {[item['serial_number'] for item in items]}"
    )
    item: dict[str, Any] = found[0]
    return item


def wait_event(stack: AcmeStack, kind: str, certificate_id: str) -> dict[str, Any]:
    """The `kind` event of this certificate, as the receiver got it (signature checked)."""

    def matching(got: list[Delivery]) -> list[Delivery]:
        return [
            d
            for d in got
            if d.payload.get("type") == kind
            and d.payload.get("data", {}).get("certificate_id") == certificate_id
        ]

    try:
        stack.receiver.wait_for(lambda got: bool(matching(got)), seconds=30)
    except AssertionError:
        types = [(d.payload.get("type"), d.payload.get("data")) for d in stack.receiver.received()]
        raise AssertionError(
            f"no {kind} for {certificate_id}; got {types[-10:]}\n{stack.log_tail()}"
        ) from None
    delivery = matching(stack.receiver.received())[0]
    payload: dict[str, Any] = Webhook(stack.webhook_secret).verify(delivery.body, delivery.headers)
    return payload


def check_issued(
    stack: AcmeStack, customer: Customer, pem_path: Path, names: set[str]
) -> dict[str, Any]:
    """A certificate an ACME client saved: it chains to the CA's root, names exactly what
    was asked, is the customer's in the REST API, and its `certificate.created` event went
    out. Returns the REST view of it."""
    leaf = certificates_in(pem_path)[0]
    assert san_names(leaf) == names
    verify_chain(stack, pem_path)
    item = rest_certificate(stack, customer, leaf.serial_number)
    assert item["account_id"] == customer.id
    assert item["status"] == "active", item
    assert set(item["dns_names"]) | set(item["ip_addresses"]) == names, item
    assert x509.load_pem_x509_certificate(item["certificate_pem"].encode()) == leaf
    event = wait_event(stack, "certificate.created", item["id"])
    assert event["data"]["account_id"] == customer.id, event
    assert event["data"]["serial_number"] == item["serial_number"], event
    return item


def ocsp(stack: AcmeStack, leaf_path: Path) -> tuple[str, str]:
    """`openssl ocsp` against the live responder: (status line of the leaf, whole output)."""
    leaf = certificates_in(leaf_path)[0]
    alone = leaf_path.with_name(leaf_path.name + ".ocsp.pem")
    alone.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    result = openssl(
        "ocsp",
        "-issuer",
        str(stack.ca_dir / "issuer.pem"),
        "-cert",
        str(alone),
        "-url",
        f"{stack.certificate_url}/api/ocsp",
        "-CAfile",
        str(stack.ca_dir / "root.pem"),
        "-verify_other",
        str(stack.ca_dir / "intermediate.pem"),
    )
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.startswith(f"{alone}:")]
    assert result.returncode == 0 and lines, output
    assert "Response verify OK" in output, output
    return lines[0].split(":", 1)[1].strip(), output


def check_revoked(
    stack: AcmeStack, customer: Customer, pem_path: Path, reason: str
) -> dict[str, Any]:
    """After a client's revocation: OCSP says revoked (with the reason), REST says revoked,
    and `certificate.revoked` went out. `reason` as RFC 5280 names it (`keyCompromise`)."""
    leaf = certificates_in(pem_path)[0]
    status, output = ocsp(stack, pem_path)
    assert status == "revoked", output
    if reason != "unspecified":  # an unspecified reason may be left out of the response
        assert f"Reason: {reason}" in output, output
    item = rest_certificate(stack, customer, leaf.serial_number)
    assert item["status"] == "revoked", item
    assert item["revocation_reason"] == reason, item
    event = wait_event(stack, "certificate.revoked", item["id"])
    assert event["data"]["status"] == "revoked", event
    return item
