"""deploy/nginx.conf (the compose proxy) in front of the real services: answers pass
through, bodies are limited with problem+json, and stalled clients do not starve the services."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServices, free_port, unique_email, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx.conf"

pytestmark = []
if (
    shutil.which("nginx") is None
    and not Path("/usr/sbin/nginx").exists()
    and not os.environ.get("CI")
):
    pytestmark.append(pytest.mark.skip(reason="nginx not installed"))


@dataclass
class Proxy:
    account_url: str
    certificate_url: str


def local_config(live: LiveServices, ports: tuple[int, int], workdir: Path) -> str:
    """The shipped file with this machine's addresses and a writable place for its files."""
    account = live.account_url.removeprefix("http://")
    certificate = live.certificate_url.removeprefix("http://")
    text = CONF.read_text()
    replacements = {
        "server account-api:5001": f"server {account}",
        "server certificate-api:5002": f"server {certificate}",
        "listen 5001;": f"listen 127.0.0.1:{ports[0]};",
        "listen 5002;": f"listen 127.0.0.1:{ports[1]};",
        "pid /tmp/nginx.pid;": f"pid {workdir}/nginx.pid;",
        "access_log /dev/stdout;": f"access_log {workdir}/access.log;",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    temp = "\n".join(
        f"    {kind}_temp_path {workdir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return text.replace("http {\n", "http {\n" + temp + "\n", 1)


@pytest.fixture(scope="module")
def proxy(live: LiveServices) -> Iterator[Proxy]:
    # Outside pytest's private temporary tree: nginx's workers drop root privileges and
    # must reach their body buffers.
    workdir = Path(tempfile.mkdtemp(prefix="tessera-nginx-"))
    os.chmod(workdir, 0o777)
    ports = (free_port(), free_port())
    conf = workdir / "nginx.conf"
    conf.write_text(local_config(live, ports, workdir))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    check = subprocess.run(
        [binary, "-t", "-e", "stderr", "-c", str(conf)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [binary, "-e", "stderr", "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result = Proxy(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
    try:
        wait_until_up(result.account_url, proc)  # type: ignore[arg-type]
        wait_until_up(result.certificate_url, proc)  # type: ignore[arg-type]
        yield result
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def test_requests_pass_through_with_their_request_id(proxy: Proxy) -> None:
    for url in (proxy.account_url, proxy.certificate_url):
        ready = httpx.get(f"{url}/readyz", headers={"X-Request-ID": "trace-42"})
        assert ready.status_code == 200
        assert ready.headers["x-request-id"] == "trace-42"
    body = {"email": unique_email("proxy"), "password": "s3cret-passw0rd", "name": "Via nginx"}
    assert httpx.post(f"{proxy.account_url}/api/accounts", json=body).status_code == 201


def test_oversized_bodies_get_problem_json_from_the_service_or_the_proxy(proxy: Proxy) -> None:
    for size in (100 * 1024, 2 * 1024 * 1024):  # the service's limit, then nginx's
        response = httpx.post(
            f"{proxy.account_url}/api/accounts",
            content=b"{" + b" " * size + b"}",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413, size
        assert response.headers["content-type"].startswith("application/problem+json"), size
        assert response.json()["status"] == 413


def test_stalled_clients_wait_on_the_proxy_not_on_the_services(proxy: Proxy) -> None:
    """More half-sent requests than the account service has threads: the service never
    sees them, and a whole request still gets its answer; nginx then cuts the stalled ones
    (client_header_timeout, client_body_timeout)."""
    port = int(proxy.account_url.rsplit(":", 1)[1])
    stalled = []
    for index in range(32):
        sock = socket.create_connection(("127.0.0.1", port))
        if index % 2:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: tessera\r\n")  # headers never end
        else:
            sock.sendall(
                b"POST /api/accounts HTTP/1.1\r\nHost: tessera\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )  # body never ends
        stalled.append(sock)
    try:
        assert httpx.get(f"{proxy.account_url}/healthz", timeout=5).status_code == 200
        for sock in stalled:
            sock.settimeout(60)  # nginx's timeouts are 10 s: it closes first
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert not answer.startswith(b"HTTP/1.1 2"), answer[:80]  # closed, or a 408
    finally:
        for sock in stalled:
            sock.close()
