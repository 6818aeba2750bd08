"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging
from typing import NamedTuple

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Integer, literal, select, text
from sqlalchemy.orm import Session, sessionmaker

from certificate_api import expiry_metrics
from certificate_api.errors import problem
from core.statements import Query
from schema.metrics import render_metrics

router = APIRouter(include_in_schema=True, tags=["operations"])
log = logging.getLogger(__name__)


class _One(NamedTuple):
    one: int


PROBE = Query(select(literal(1, Integer).label("one")), _One)


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable",
    responses={503: {"description": "database unreachable"}},
)
async def readyz(request: Request) -> Response:
    """200 when both of the service's connection pools run a query, 503 otherwise: the async
    one (certificate and OCSP routes) and the SQLAlchemy one (CRL and CA routes)."""
    runtime = request.app.state.runtime
    try:
        await runtime.db.one(PROBE)
        await anyio.to_thread.run_sync(_probe_sessions, runtime.sessions)
    except Exception:  # any failure to reach it means not ready
        log.warning("database unreachable", exc_info=True)
        return problem(503, "Service Unavailable", "database unreachable", {"Retry-After": "5"})
    return Response('{"status":"ready"}', media_type="application/json")


def _probe_sessions(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.execute(text("SELECT 1"))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus exposition text."""
    payload, content_type = render_metrics()
    runtime = request.app.state.runtime
    try:
        with runtime.sessions() as session:
            payload += expiry_metrics.render(session, runtime.authorities)
    except Exception:  # the database is down: serve the process's own metrics anyway
        log.warning("could not read the expiry gauges", exc_info=True)
    return Response(payload, media_type=content_type)
