"""Webhook delivery: `python -m bench.webhooks [--backlog 5000] [--rate 50] [--seconds 10]`.

Runs `ca-admin worker` as its own process against a throwaway PostgreSQL database and a real
receiver on 127.0.0.1 that answers 204 at once, then measures:

- throughput: a backlog of events committed at once, drained to the receiver (events/s);
- latency: events committed one at a time at a steady rate into an idle worker, from each
  commit to its arrival at the receiver (p50, p99, max).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.services import BenchDatabase, default_server
from schema.db import make_engine, make_sessionmaker
from schema.events import EventType, record_event


class Arrivals:
    """When each webhook-id first reached the receiver (monotonic seconds)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.monotonic()
                with arrivals.lock:
                    arrivals.at.setdefault(self.headers["webhook-id"], now)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default listen backlog of 5 refuses bursts

        server = Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hook"

    def count(self) -> int:
        with self.lock:
            return len(self.at)


def commit_events(sessions: Any, count: int) -> dict[str, float]:
    """Commit `count` certificate events (ten per subject, so ordering is exercised)."""
    committed: dict[str, float] = {}
    with sessions() as session:
        subject = uuid.uuid4()
        for n in range(count):
            if n % 10 == 0:
                subject = uuid.uuid4()
            event = record_event(
                session, EventType.CERTIFICATE_CREATED, subject, {"certificate_id": str(subject)}
            )
            committed[str(event.id)] = 0.0
        session.commit()
    now = time.monotonic()
    return dict.fromkeys(committed, now)


def wait_for(arrivals: Arrivals, total: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while arrivals.count() < total and time.monotonic() < deadline:
        time.sleep(0.01)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50, help="events per second, latency run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    parser.add_argument("--server", default=default_server(), help="PostgreSQL server")
    args = parser.parse_args()
    database = BenchDatabase(args.server)
    database.create()
    arrivals = Arrivals()
    server, url = arrivals.serve()
    engine = make_engine(database.url)
    sessions = make_sessionmaker(engine)
    with tempfile.TemporaryDirectory() as var:
        env = {
            **os.environ,
            "DATABASE_URL": database.url,
            "VAR_DIR": var,
            "WEBHOOK_URL": url,
            "LOG_LEVEL": "WARNING",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "ca_admin.cli", "worker"], env=env, cwd=Path.cwd()
        )
        try:
            warm = commit_events(sessions, 1)  # wait for the worker to be up and connected
            wait_for(arrivals, len(warm), 60)
            # Latency first, into an idle worker: one commit at a time, at a steady rate.
            latencies: list[float] = []
            interval = 1 / args.rate
            committed: dict[str, float] = {}
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                committed.update(commit_events(sessions, 1))
                time.sleep(interval)
            wait_for(arrivals, len(committed), 30)
            for event_id, at in committed.items():
                if event_id in arrivals.at:
                    latencies.append((arrivals.at[event_id] - at) * 1000)

            before = arrivals.count()
            begun = time.monotonic()
            backlog = commit_events(sessions, args.backlog)
            wait_for(arrivals, before + args.backlog, 300)
            drained = max(arrivals.at[event_id] for event_id in backlog if event_id in arrivals.at)
            delivered = sum(1 for event_id in backlog if event_id in arrivals.at)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            server.shutdown()
            engine.dispose()
            database.drop()

    print(
        f"latency, commit to receiver ({len(latencies)} events at {args.rate:g}/s): "
        f"p50 {statistics.median(latencies):.0f} ms  p99 {percentile(latencies, 0.99):.0f} ms  "
        f"max {max(latencies):.0f} ms  lost {len(committed) - len(latencies)}"
    )
    print(
        f"throughput, backlog of {args.backlog}: {delivered / (drained - begun):,.0f} events/s "
        f"(all delivered: {delivered == args.backlog})"
    )


if __name__ == "__main__":
    main()
