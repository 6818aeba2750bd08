"""Each webhook test gets its own database, apps, receiver and in-process worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from account_api import create_app as create_account_app
from certificate_api.main import create_app as create_certificate_app
from schema import keyfiles
from schema.db import make_engine, make_sessionmaker
from tests.conftest import Customer, account_settings, certificate_settings, unique_email
from tests.webhooks.receiver import Receiver
from worker.delivery import Worker
from worker.settings import WorkerSettings


@dataclass
class World:
    """A fresh deployment: database, both apps, and a way to run workers against it."""

    database_url: str
    var_dir: Path
    engine: Engine
    accounts: Any
    certs: Any
    secret: str

    def customer(self) -> Customer:
        email, password = unique_email("hook"), "long enough pw"
        created = self.accounts.post(
            "/api/accounts", json={"email": email, "password": password, "name": "Hooked"}
        )
        token = self.accounts.post("/api/auth/token", json={"email": email, "password": password})
        return Customer(created.json["id"], email, password, token.json["access_token"])

    def admin(self) -> Customer:
        """A customer promoted by the rule `ca-admin create-admin` uses."""
        from account_api.accounts import service
        from account_api.extensions import session
        from account_api.runtime import runtime

        customer = self.customer()
        with self.accounts.application.app_context():
            service.make_admin(session(), runtime().passwords, customer.email, None, "Admin")
        return customer

    def issue(self, customer: Customer, **body: Any) -> dict[str, Any]:
        response = self.certs.post(
            "/api/certificates",
            headers=customer.auth,
            json={"common_name": "hook.example.com", **body},
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def worker_settings(self, url: str | None, **overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "var_dir": self.var_dir,
            "webhook_url": url,
            "webhook_poll_seconds": 0.05,
            "webhook_backoff_base_seconds": 0.05,
            "webhook_backoff_cap_seconds": 0.2,
            "webhook_timeout_seconds": 2.0,
        }
        values.update(overrides)
        return WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def world(databases: Any, tmp_path: Path) -> Iterator[World]:
    url = databases.create()
    var_dir = tmp_path / "var"
    accounts = create_account_app(account_settings(url, var_dir)).test_client()
    engine = make_engine(url)
    with TestClient(create_certificate_app(certificate_settings(url, var_dir))) as certs:
        settings = WorkerSettings(_env_file=None, database_url=url, var_dir=var_dir)  # type: ignore[call-arg]
        yield World(url, var_dir, engine, accounts, certs, keyfiles.webhook_secret(settings))
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def run_worker(world: World) -> Iterator[Callable[..., Worker]]:
    """Start an in-process worker in a thread; all are stopped at the end of the test."""
    running: list[tuple[Worker, threading.Thread, Engine]] = []

    def start(url: str | None, **overrides: Any) -> Worker:
        settings = world.worker_settings(url, **overrides)
        engine = make_engine(world.database_url, pool_size=settings.webhook_concurrency + 2)
        worker = Worker(settings, make_sessionmaker(engine), world.secret)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        running.append((worker, thread, engine))
        return worker

    yield start
    for worker, thread, engine in running:
        worker.stop()
        thread.join(timeout=10)
        engine.dispose()
