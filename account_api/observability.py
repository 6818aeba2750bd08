"""Request ids, JSON access logs, metrics and the health endpoints."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Blueprint, Flask, Response, g, request
from sqlalchemy import text

from account_api.errors import problem
from account_api.extensions import db
from account_api.runtime import client
from schema.logs import request_id_var
from schema.metrics import observe_request, render_metrics

access_log = logging.getLogger("tessera.access")
bp = Blueprint("health", __name__)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return Response('{"status":"ok"}', mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    """The database answers; 503 otherwise."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any failure to reach it means not ready
        logging.getLogger(__name__).warning("database unreachable", exc_info=True)
        db.session.rollback()
        return problem(503, "Service Unavailable", "database unreachable", {"Retry-After": "5"})
    return Response('{"status":"ready"}', mimetype="application/json")


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition."""
    payload, content_type = render_metrics()
    return Response(payload, content_type=content_type)


def install(app: Flask) -> None:
    """Tag each request with an id, then log and count it when answered."""

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
        g.request_token = request_id_var.set(g.request_id)
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "unmatched"
        observe_request("account", request.method, route, response.status_code, elapsed)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,  # never the query string: it may carry secrets
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
                "client": client(),
            },
        )
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("request_token", None)
        if token is not None:
            request_id_var.reset(token)

    app.register_blueprint(bp)
