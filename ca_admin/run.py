"""`ca-admin run`: both services and the worker in the foreground until Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from schema.settings import CommonSettings

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def service_commands(settings: CommonSettings, workers: int) -> dict[str, list[str]]:
    """The processes `run` starts, by name."""
    python = sys.executable
    port = settings.certificate_api_port
    return {
        "account-api": [
            python,
            "-m",
            "gunicorn",
            "-c",
            str(PACKAGE_ROOT / "account_api" / "gunicorn.conf.py"),
            "--workers",
            str(workers),
            "account_api.wsgi:app",
        ],
        "certificate-api": [
            python,
            "-m",
            "gunicorn",  # Uvicorn workers, a listening socket each (reuse_port)
            "-c",
            str(PACKAGE_ROOT / "certificate_api" / "gunicorn.conf.py"),
            "--bind",
            f"[{settings.host}]:{port}" if ":" in settings.host else f"{settings.host}:{port}",
            "--workers",
            str(workers),
            "certificate_api.asgi:app",
        ],
        "worker": [python, "-m", "ca_admin.cli", "worker"],
    }


def metrics_env(var_dir: Path, name: str) -> dict[str, str]:
    """A fresh directory where one service's worker processes pool their metrics."""
    directory = var_dir / "metrics" / name
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return {"PROMETHEUS_MULTIPROC_DIR": str(directory.resolve())}


# Longer than the services' own graceful timeouts (30 s accounts, 20 s certificates).
STOP_TIMEOUT_SECONDS = 40


def supervise(commands: Mapping[str, Sequence[str]], var_dir: Path) -> int:
    """Start every command; when one exits or Ctrl-C comes, stop the rest gracefully.

    Each service runs in a session of its own, so a terminal's Ctrl-C reaches only this
    supervisor, which then sends one SIGTERM to each service. Two signals at once (the
    terminal's and a master's) is what leaves Gunicorn workers stuck. Whatever is still
    running after the timeout is killed with its whole process group (workers included).
    """
    procs = {
        name: subprocess.Popen(  # noqa: S603
            list(cmd), env={**os.environ, **metrics_env(var_dir, name)}, start_new_session=True
        )
        for name, cmd in commands.items()
    }
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping", file=sys.stderr)
                    code = proc.returncode or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in time; killing it", file=sys.stderr)
            # The service's group: its worker processes and key-pool helpers too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code
