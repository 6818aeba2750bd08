"""Webhook commands: the delivery worker, and what operators see and do with events."""

from __future__ import annotations

import signal
import uuid
from datetime import timedelta

import click


def _context() -> tuple[object, object]:
    from schema.db import make_engine, make_sessionmaker
    from worker.settings import WorkerSettings

    settings = WorkerSettings()
    return settings, make_sessionmaker(make_engine(settings.effective_database_url))


@click.command()
def worker() -> None:
    """Deliver webhook events until SIGTERM or Ctrl-C (several may run on PostgreSQL)."""
    from prometheus_client import start_http_server

    from schema import keyfiles
    from schema.db import make_engine, make_sessionmaker
    from schema.logs import configure_logging
    from worker import expiry
    from worker.delivery import Worker
    from worker.settings import WorkerSettings

    settings = WorkerSettings()
    configure_logging(settings.log_level)
    engine = make_engine(
        settings.effective_database_url, pool_size=settings.webhook_concurrency + 2
    )
    runner = Worker(settings, make_sessionmaker(engine), keyfiles.webhook_secret(settings))
    if settings.webhook_metrics_port:
        start_http_server(settings.webhook_metrics_port, addr=settings.host)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    expiry.start(make_sessionmaker(engine), runner.stopping)  # certificate.expiring
    runner.run()
    engine.dispose()


@click.group()
def events() -> None:
    """See and re-send webhook events."""


@events.command("list")
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", default=50, show_default=True)
def list_events(state: str | None, limit: int) -> None:
    """Newest events with their attempts and last error; counts by state first."""
    from sqlalchemy.orm import Session, sessionmaker

    from worker import outbox

    _settings, sessions = _context()
    assert isinstance(sessions, sessionmaker)
    with sessions() as session:
        assert isinstance(session, Session)
        click.echo("  ".join(f"{k}={v}" for k, v in outbox.counts(session).items()))
        for event in outbox.listing(session, state, limit):
            click.echo(
                f"{event.id}  {event.type:<26} {event.state:<9} attempts={event.attempts}"
                f"  last={event.last_status or '-'} {event.last_error or ''}"
            )


@events.command("requeue")
@click.argument("event_ids", nargs=-1, type=click.UUID)
def requeue(event_ids: tuple[uuid.UUID, ...]) -> None:
    """Send failed events again: the given ids, or every failed event."""
    from sqlalchemy.orm import sessionmaker

    from worker import outbox
    from worker.settings import WorkerSettings

    settings, sessions = _context()
    assert isinstance(sessions, sessionmaker) and isinstance(settings, WorkerSettings)
    with sessions() as session:
        count = outbox.requeue(
            session, list(event_ids) or None, timedelta(seconds=settings.webhook_retry_for_seconds)
        )
    click.echo(f"requeued {count} events")


@click.group()
def webhooks() -> None:
    """The webhook endpoint."""


@webhooks.command("enable")
@click.option("--url", default=None, help="default: WEBHOOK_URL")
def enable(url: str | None) -> None:
    """Resume deliveries to an endpoint that answered 410."""
    from sqlalchemy.orm import sessionmaker

    from worker import outbox
    from worker.settings import WorkerSettings

    settings, sessions = _context()
    assert isinstance(sessions, sessionmaker) and isinstance(settings, WorkerSettings)
    target = url or settings.webhook_url
    if not target:
        raise click.ClickException("no --url and no WEBHOOK_URL")
    with sessions() as session:
        changed = outbox.enable_endpoint(session, target)
    click.echo(f"{target} re-enabled" if changed else f"{target} was not disabled")


COMMANDS = (worker, events, webhooks)
