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
# A child that dies is started again after 1, 2, 4 ... up to 30 s; the pause starts over
# once the child has stayed up for a minute.
RESTART_PAUSE_CAP_SECONDS = 30.0
STABLE_SECONDS = 60.0


class Child:
    """One supervised command: its process, and when to start it again after it died."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str]) -> None:
        self.name, self.command, self.env = name, list(command), dict(env)
        self.pause = 0.0
        self.restart_at: float | None = None
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started = time.monotonic()
        # A session of its own: a terminal's Ctrl-C reaches only the supervisor.
        return subprocess.Popen(self.command, env=self.env, start_new_session=True)  # noqa: S603

    def check(self) -> None:
        """Notice a death (and plan the restart), or restart when the pause is over."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restart_at = None
                self.proc = self._spawn()
            return
        if self.proc.poll() is None:
            return
        _kill_group(self.proc)  # what it left behind (its workers) would hold its port
        lived = now - self.started
        self.pause = (
            1.0
            if lived >= STABLE_SECONDS
            else min(max(self.pause * 2, 1.0), RESTART_PAUSE_CAP_SECONDS)
        )
        self.restart_at = now + self.pause
        print(
            f"{self.name} exited with {self.proc.returncode}; restarting in {self.pause:g} s",
            file=sys.stderr,
        )

    def stop(self) -> None:
        """Ask it to stop gracefully (no restart follows)."""
        self.restart_at = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The child's group: its worker processes and key-pool helpers too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def supervise(commands: Mapping[str, Sequence[str]], var_dir: Path) -> int:
    """Start every command and keep it running until Ctrl-C or SIGTERM, then stop them all.

    A child that dies is started again after a growing pause while the others go on
    serving: one crashed process (the worker during a database restart, say) never takes
    the whole product down. Each child runs in a session of its own, so a terminal's
    Ctrl-C reaches only this supervisor, which then sends one SIGTERM to each: two signals
    at once (the terminal's and a master's) is what leaves Gunicorn workers stuck. Whatever
    is still running after the timeout is killed with its whole process group.
    """
    children = [
        Child(name, cmd, {**os.environ, **metrics_env(var_dir, name)})
        for name, cmd in commands.items()
    ]
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for child in children:
                child.check()
            time.sleep(0.2)
    finally:
        for child in children:
            child.stop()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{child.name} did not stop in time; killing it", file=sys.stderr)
            _kill_group(child.proc)
            child.proc.wait()
    return 0
