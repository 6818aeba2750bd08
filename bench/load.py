"""Drive load with wrk (a compiled generator in its own process) and read what it measured."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"


@dataclass(frozen=True)
class Request:
    """One prepared HTTP request; wrk replays a list of them round-robin."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def line(self) -> str:
        headers = "".join(f"\t{name}: {value}" for name, value in self.headers.items())
        return f"{self.method}\t{self.path}\t{self.body.hex()}{headers}\n"


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run saw."""

    concurrency: int
    answered: int
    seconds: float
    statuses: dict[int, int]
    retry_after: int  # 503 answers that carried Retry-After
    socket_errors: int  # connect, read, write
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu: float  # CPU seconds wrk itself used
    rps: float = 0.0  # answered / seconds

    def __post_init__(self) -> None:
        if self.seconds > 0:
            object.__setattr__(self, "rps", self.answered / self.seconds)

    def unexpected(self, expected: frozenset[int]) -> int:
        """Answers with a status outside `expected`, plus socket errors and timeouts."""
        wrong = sum(count for status, count in self.statuses.items() if status not in expected)
        return wrong + self.socket_errors + self.timeouts


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    base_url: str,
    requests: Sequence[Request],
    concurrency: int,
    seconds: float,
    max_requests: int,
    threads: int = 1,
    timeout_s: float = 30.0,
) -> LoadResult:
    """Run wrk for at most `seconds` and `max_requests` answers at a fixed concurrency."""
    if not requests:
        raise ValueError("no requests to send")
    threads = max(1, min(threads, concurrency))
    with tempfile.NamedTemporaryFile("w", suffix=".requests", delete=False) as handle:
        handle.writelines(request.line() for request in requests)
        request_file = handle.name
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={round(timeout_s)}s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
        "--",
        request_file,
        str(max_requests),
        str(threads),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        Path(request_file).unlink(missing_ok=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = next(
        (line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")), None
    )
    if report is None:
        raise RuntimeError(f"wrk gave no report: {completed.stdout}\n{completed.stderr}")
    data = json.loads(report.removeprefix("BENCH_JSON "))
    errors, latency = data["errors"], data["latency_us"]
    return LoadResult(
        concurrency=concurrency,
        answered=data["answered"],
        seconds=data["span_us"] / 1e6,
        statuses={int(code): count for code, count in data["statuses"].items()},
        retry_after=data["retry_after"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"],
        timeouts=errors["timeout"],
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        generator_cpu=cpu,
    )


def settle(seconds: float = 0.5) -> None:
    """A short pause between runs so one run's tail does not land in the next."""
    time.sleep(seconds)
