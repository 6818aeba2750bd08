"""`ca-admin run` (what `make run` runs): up, serving, and gone without leftovers on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FAST_ARGON2, free_port, unique_email, wait_until_up


def descendants(root: int) -> set[int]:
    """Every live process below `root`."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


GRANT = [sys.executable, "-m", "ca_admin.cli", "domains", "grant"]


def test_ctrl_c_stops_every_process_it_started(databases: Any, tmp_path: Path) -> None:
    account_port, certificate_port = free_port(), free_port()
    env = {
        **os.environ,
        # A database of its own: its CA is sealed under this run's own master key.
        "DATABASE_URL": databases.create(migrate=False),
        "VAR_DIR": str(tmp_path / "var"),
        "ACCOUNT_API_PORT": str(account_port),
        "CERTIFICATE_API_PORT": str(certificate_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{certificate_port}",
        "ACCOUNT_API_URL": f"http://127.0.0.1:{account_port}",
        "WEB_CONCURRENCY": "2",
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
    }
    with (tmp_path / "run.log").open("wb") as log:
        # A session of its own, like a terminal's foreground job.
        proc = subprocess.Popen(
            [sys.executable, "-m", "ca_admin.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        accounts = f"http://127.0.0.1:{account_port}"
        certs = f"http://127.0.0.1:{certificate_port}"
        wait_until_up(accounts, proc, 90)
        wait_until_up(certs, proc, 90)
        email, password = unique_email("run"), "long enough pw"
        assert httpx.post(
            f"{accounts}/api/accounts", json={"email": email, "password": password, "name": "R"}
        ).is_success
        token = httpx.post(
            f"{accounts}/api/auth/token", json={"email": email, "password": password}
        ).json()["access_token"]
        # The README's operator step: with the default NAME_AUTHORIZATION=required, names
        # are granted before issuance.
        granted = subprocess.run(
            [*GRANT, email, "example.com", "--include-subdomains"],
            env=env,
            capture_output=True,
            check=False,
        )
        assert granted.returncode == 0, granted.stderr
        issued = httpx.post(  # an RSA issuance sets the key pool refilling
            f"{certs}/api/certificates",
            json={"common_name": "run.example.com", "key_type": "rsa-2048"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert issued.status_code == 201, issued.text
        started = descendants(proc.pid)
        assert len(started) >= 5  # gunicorn, its workers, uvicorn, its worker, the worker

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(timeout=90) == 0
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = sorted(pid for pid in started if alive(pid))
        assert not left, f"still running after Ctrl-C: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def children_by_role(root: int) -> dict[str, int]:
    """The direct children of `ca-admin run`, by what they run."""
    roles = {"account_api.wsgi": "account-api", "certificate_api.asgi": "certificate-api"}
    found: dict[str, int] = {}
    for pid in descendants(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[1]) != root:
            continue
        role = next((name for key, name in roles.items() if key in cmdline), None)
        if role is None and cmdline.rstrip().endswith("worker"):
            role = "worker"
        if role:
            found[role] = pid
    return found


def test_run_restarts_a_child_that_dies_and_the_rest_keeps_serving(
    databases: Any, tmp_path: Path
) -> None:
    from tests.webhooks.receiver import Receiver

    receiver = Receiver().start()
    account_port, certificate_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": databases.create(migrate=False),
        "VAR_DIR": str(tmp_path / "var"),
        "ACCOUNT_API_PORT": str(account_port),
        "CERTIFICATE_API_PORT": str(certificate_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{certificate_port}",
        "ACCOUNT_API_URL": f"http://127.0.0.1:{account_port}",
        "WEB_CONCURRENCY": "1",
        "KEY_POOL_FILL_ON_START": "false",
        "WEBHOOK_URL": receiver.url,
        "WEBHOOK_POLL_SECONDS": "0.1",
        "NAME_AUTHORIZATION": "open",  # the names a restarted service issues are not the point
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
    }
    with (tmp_path / "run.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ca_admin.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    accounts = f"http://127.0.0.1:{account_port}"
    certs = f"http://127.0.0.1:{certificate_port}"
    try:
        wait_until_up(accounts, proc, 90)
        wait_until_up(certs, proc, 90)
        before = children_by_role(proc.pid)
        assert set(before) == {"account-api", "certificate-api", "worker"}, before
        for pid in before.values():  # each dies at once, as after an OOM kill
            os.kill(pid, signal.SIGKILL)

        deadline = time.monotonic() + 120
        after: dict[str, int] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, "ca-admin run stopped when a child died"
            after = children_by_role(proc.pid)
            if len(after) == 3 and not set(after.values()) & set(before.values()):
                break
            time.sleep(0.2)
        assert set(after) == {"account-api", "certificate-api", "worker"}, after
        wait_until_up(accounts, proc, 90)
        wait_until_up(certs, proc, 90)

        email, password = unique_email("restart"), "long enough pw"
        assert httpx.post(
            f"{accounts}/api/accounts", json={"email": email, "password": password, "name": "R"}
        ).is_success
        token = httpx.post(
            f"{accounts}/api/auth/token", json={"email": email, "password": password}
        ).json()["access_token"]
        issued = httpx.post(
            f"{certs}/api/certificates",
            json={"common_name": "restart.example.com"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert issued.status_code == 201, issued.text
        cert_id = issued.json()["id"]
        receiver.wait_for(  # the restarted worker delivers
            lambda got: any(d.payload["data"].get("certificate_id") == cert_id for d in got),
            seconds=60,
        )
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        receiver.stop()
