"""Service CPU per request without HTTP: `python -m bench.inprocess [--requests 2000]`.

Builds the certificate service app against a throwaway PostgreSQL database and calls it as
an ASGI application from this process, with `--concurrency` requests in flight, so the
figure is the app's own CPU (routing, dependencies, route, database client, reply, access
log) without Uvicorn's HTTP parsing or a load generator. PostgreSQL's CPU is not counted.
`GET /healthz` runs first in the same process, as the baseline.

For comparing two versions of the code on a noisy machine: the ratios to healthz hold when
the absolute figures move. `make bench` is the figure of record.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from account_api import create_app as create_account_app
from account_api.settings import AccountSettings
from bench.services import BenchDatabase, default_server
from certificate_api.main import create_app
from certificate_api.settings import CertificateSettings

Call = Callable[[], Awaitable[int]]


class AsgiClient:
    """Calls an ASGI app directly: one request, its status and body."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.auth = (b"authorization", f"Bearer {token}".encode())

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        path, _, query = target.partition("?")
        headers = [(b"host", b"bench"), self.auth]
        if body:
            headers += [(b"content-type", b"application/json")]
            headers += [(b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        sent = False
        status, chunks = 0, []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect while the app answers
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def lifespan(app: Any) -> tuple[asyncio.Queue[dict[str, str]], asyncio.Task[None]]:
    """Run the app's startup; returns what ends it."""
    incoming: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await incoming.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            incoming.get,
            outgoing.put,
        )
    )
    started = await outgoing.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started}")
    return incoming, task


async def measure(call: Call, requests: int, concurrency: int) -> tuple[float, float]:
    """CPU microseconds per request and requests per second, after a short warm-up."""

    async def worker(count: int) -> None:
        for _ in range(count):
            status = await call()
            if status >= 400:
                raise RuntimeError(f"status {status}")

    await asyncio.gather(*(worker(10) for _ in range(concurrency)))
    per_worker = max(requests // concurrency, 1)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = per_worker * concurrency
    return cpu / done * 1e6, done / wall


def token_for(database_url: str, var_dir: Path) -> str:
    """Sign up and log in one customer through the account app."""
    accounts = create_account_app(
        AccountSettings(_env_file=None, database_url=database_url, var_dir=var_dir)  # type: ignore[call-arg]
    ).test_client()
    login = {"email": "bench@example.com", "password": "bench-passw0rd-inprocess"}
    created = accounts.post("/api/accounts", json={**login, "name": "Bench"})
    assert created.status_code == 201, created.get_data(as_text=True)
    answer = accounts.post("/api/auth/token", json=login)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    token: str = answer.json["access_token"]
    return token


async def run(database_url: str, var_dir: Path, requests: int, concurrency: int) -> None:
    token = token_for(database_url, var_dir)
    settings = CertificateSettings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, var_dir=var_dir, key_pool_fill_on_start=False
    )
    app = create_app(settings)
    # The access log is formatted as in production, and written nowhere.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    stop, task = await lifespan(app)
    client = AsgiClient(app, token)
    issue_body = orjson.dumps({"common_name": "inprocess.example.com"})
    status, body = await client.request("POST", "/api/certificates", issue_body)
    assert status == 201, body
    certificate = f"/api/certificates/{orjson.loads(body)['id']}"

    async def call(method: str, path: str, payload: bytes = b"") -> int:
        return (await client.request(method, path, payload))[0]

    scenarios: dict[str, Call] = {
        "healthz": lambda: call("GET", "/healthz"),
        "fetch JSON": lambda: call("GET", certificate),
        "issue ec-p256": lambda: call("POST", "/api/certificates", issue_body),
        # after issuing: pages of 100 (the default limit)
        "list active": lambda: call("GET", "/api/certificates?active=true"),
    }
    print(f"in process, {concurrency} in flight, PostgreSQL's CPU not counted")
    baseline = 0.0
    for name, scenario in scenarios.items():
        count = requests if name != "issue ec-p256" else requests // 2
        micros, rate = await measure(scenario, count, concurrency)
        baseline = baseline or micros
        ratio = micros / baseline
        print(
            f"  {name:14} {micros:7,.0f} µs CPU/request {rate:7,.0f} req/s  {ratio:5.1f}x healthz"
        )
    await stop.put({"type": "lifespan.shutdown"})
    await task


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario (2,000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    parser.add_argument("--database-url", default=default_server(), help="PostgreSQL server")
    args = parser.parse_args()
    database = BenchDatabase(args.database_url)
    database.create()
    try:
        with tempfile.TemporaryDirectory() as var:
            asyncio.run(run(database.url, Path(var), args.requests, args.concurrency))
    finally:
        database.drop()


if __name__ == "__main__":
    main()
