"""A real PgBouncer in transaction mode, from deploy/pgbouncer.ini, for tests, CI and bench.

`python -m bench.pgbouncer --port P [--upstream URL]` runs one in the foreground until
SIGTERM (`.ci/run` uses it); `PgBouncer` does the same from Python. Only the listening
port, the upstream server, the files and the authentication (trust, as the test server has)
differ from the shipped example, so the tests run the limits operators are given.
"""

from __future__ import annotations

import argparse
import configparser
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import make_url

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "pgbouncer.ini"
# PgBouncer refuses to run as root; as root we start it as this user.
RUN_AS = "postgres"
# The test server is shared (max_connections 100) and every throwaway database is a pool of
# its own: few server connections per database, released soon. Client limits stay as shipped.
SMALL_SERVER = {
    "default_pool_size": "4",
    "reserve_pool_size": "0",
    "max_db_connections": "6",
    "server_idle_timeout": "5",
}


def pooled_url(url: str, port: int) -> str:
    """The same URL (user, password, database, query) aimed at a PgBouncer on 127.0.0.1."""
    parsed = make_url(url).set(host="127.0.0.1", port=port)
    return parsed.render_as_string(hide_password=False)


def config_text(
    port: int,
    upstream_host: str,
    upstream_port: int,
    workdir: Path,
    overrides: dict[str, str] | None = None,
) -> str:
    """deploy/pgbouncer.ini with this run's port, upstream, files and trust authentication
    (PgBouncer's trust still wants the user names in its auth_file: see `userlist`)."""
    config = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    config.optionxform = str  # type: ignore[assignment,method-assign]  # keep "*" and case
    config.read(EXAMPLE)
    config["databases"] = {"*": f"host={upstream_host} port={upstream_port}"}
    main = config["pgbouncer"]
    main.update(
        {
            "listen_addr": "127.0.0.1",
            "listen_port": str(port),
            "auth_type": "trust",
            "auth_file": str(workdir / "userlist.txt"),
            "logfile": str(workdir / "pgbouncer.log"),
            "pidfile": str(workdir / "pgbouncer.pid"),
            **(overrides or {}),
        }
    )
    lines = []
    for section in config.sections():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in config[section].items()]
    return "\n".join(lines) + "\n"


class PgBouncer:
    """One PgBouncer process on 127.0.0.1:`port` in front of `upstream` (a PostgreSQL URL)."""

    def __init__(self, upstream: str, port: int, overrides: dict[str, str] | None = None) -> None:
        parsed = make_url(upstream)
        self.user = parsed.username or "postgres"
        self.upstream_host = parsed.host or "127.0.0.1"
        self.upstream_port = parsed.port or 5432
        self.port = port
        self.overrides = overrides
        self.workdir = Path(tempfile.mkdtemp(prefix="tessera-pgbouncer-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "pgbouncer.log"

    def url_for(self, url: str) -> str:
        """`url` (a database on the upstream server) through this PgBouncer."""
        return pooled_url(url, self.port)

    def start(self, seconds: float = 15) -> None:
        """Write the config, start PgBouncer, and wait until it accepts connections."""
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        ini = self.workdir / "pgbouncer.ini"
        ini.write_text(config_text(self.port, self.upstream_host, self.upstream_port, self.workdir))
        (self.workdir / "userlist.txt").write_text(f'"{self.user}" ""\n')
        user = None
        if os.geteuid() == 0:
            user = RUN_AS
            entry = pwd.getpwnam(RUN_AS)
            for path in (self.workdir, *self.workdir.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.proc = subprocess.Popen(
            [binary, str(ini)],
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pgbouncer not listening after {seconds} s: {self.log()}")

    def log(self) -> str:
        """The end of PgBouncer's log."""
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop PgBouncer (it closes every client connection) and remove its files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # PgBouncer: SIGINT is a fast shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    """Run one PgBouncer in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--small-server", action="store_true", help="few server connections (a shared server)"
    )
    args = parser.parse_args()
    bouncer = PgBouncer(args.upstream, args.port, SMALL_SERVER if args.small_server else None)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bouncer.start()
    print(f"pgbouncer on 127.0.0.1:{args.port}", flush=True)
    try:
        while not stopping and bouncer.proc is not None and bouncer.proc.poll() is None:
            time.sleep(0.2)
    finally:
        bouncer.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
