"""Prometheus metrics both services expose, defined once."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# Label values come only from these sets: a client's made-up method would otherwise add a
# time series per request, and /metrics would grow without bound. Unmatched paths are
# already one value ("unmatched"): the route label is the matched template, never the path.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


def observe_request(service: str, method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency (unknown methods under one label)."""
    method = method if method in KNOWN_METHODS else OTHER_METHOD
    HTTP_REQUESTS.labels(service, method, route, str(status)).inc()
    HTTP_LATENCY.labels(service, method, route).observe(seconds)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text; under several worker processes, all of them summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
