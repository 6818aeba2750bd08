"""Markdown tables for the terminal and docs/performance.md, and the JSON record of a run."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ceilings import CEILING_LABELS
from bench.load import LoadResult

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One scenario at one concurrency: what wrk measured, or why it was skipped."""

    scenario: str
    service: str
    concurrency: int
    expected: list[int]
    crypto: str | None = None
    result: LoadResult | None = None
    note: str = ""
    service_cores: float | None = None  # CPU the service's processes used, in cores
    database_cores: float | None = None  # CPU of the PostgreSQL backends of the bench database
    other_cores: float | None = None  # the rest of the machine, wrk excluded: noise if large
    recovery_s: float | None = None  # after an overload run: until /readyz answers in 1 s
    connections: list[int] = field(default_factory=list)  # per worker process, mid-run

    @property
    def errors(self) -> int:
        return self.result.unexpected(frozenset(self.expected)) if self.result else 0


@dataclass
class ScalePoint:
    """Fetch and list latency at one table size: several runs of each query."""

    certificates: int
    accounts: int
    rows: list[Row] = field(default_factory=list)
    seed_seconds: float = 0.0

    def medians(self) -> dict[tuple[str, int], tuple[float, float, float, int]]:
        """(query, concurrency) -> median p50 ms, p99 ms, req/s over its runs, and how many."""
        runs: dict[tuple[str, int], list[LoadResult]] = {}
        for row in self.rows:
            if row.result is not None:
                runs.setdefault((row.scenario, row.concurrency), []).append(row.result)
        return {
            key: (
                statistics.median(r.p50_ms for r in results),
                statistics.median(r.p99_ms for r in results),
                statistics.median(r.rps for r in results),
                len(results),
            )
            for key, results in runs.items()
        }


def scale_ratios(run: Run) -> list[tuple[str, int, tuple[float, ...], tuple[float, ...]]]:
    """(query, concurrency, small point's medians, large point's) for each query measured
    at both table sizes."""
    if len(run.scale) < 2:
        return []
    small, large = run.scale[0].medians(), run.scale[-1].medians()
    return [(name, c, small[name, c], large[name, c]) for name, c in small if (name, c) in large]


@dataclass
class Run:
    """Everything one `python -m bench` measured."""

    command: str
    started: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    stem: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    machine: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    crypto: dict[str, float] = field(default_factory=dict)
    framework: dict[str, dict[int, float]] = field(default_factory=dict)  # service -> c -> rps
    rows: list[Row] = field(default_factory=list)
    overload: list[Row] = field(default_factory=list)
    cfssl: list[Row] = field(default_factory=list)
    names: list[Row] = field(default_factory=list)  # issuance with and without name checks
    acme: list[Row] = field(default_factory=list)  # ACME and REST issuance, one Python client
    scale: list[ScalePoint] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    postgres = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return {
        "commit": commit.stdout.strip() or "unknown",
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postgresql client": postgres.stdout.strip(),
    }


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def framework_ratio(run: Run, row: Row) -> float | None:
    ceiling = run.framework.get(row.service, {}).get(row.concurrency)
    if row.result is None or not ceiling or row.scenario.startswith("healthz"):
        return None
    return row.result.rps / ceiling


def crypto_ratio(run: Run, row: Row) -> float | None:
    ceiling = run.crypto.get(row.crypto or "")
    if row.result is None or not ceiling:
        return None
    return row.result.rps / ceiling


def scenario_table(run: Run, rows: list[Row]) -> str:
    lines = [
        "| scenario | c | req/s | p50 ms | p99 ms | errors | ÷ framework | ÷ crypto (1 core) "
        "| CPU cores: service / PostgreSQL / rest | connections per worker |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        if row.result is None:
            lines.append(f"| {row.scenario} | {row.concurrency} | {row.note} | | | | | | | |")
            continue
        split = "/".join(str(n) for n in row.connections) or "—"
        r = row.result
        cpu = " / ".join(
            "—" if value is None else f"{value:.2f}"
            for value in (row.service_cores, row.database_cores, row.other_cores)
        )
        lines.append(
            f"| {row.scenario} | {row.concurrency} | {r.rps:,.0f} | {_ms(r.p50_ms)} | "
            f"{_ms(r.p99_ms)} | {row.errors} | {_ratio(framework_ratio(run, row))} | "
            f"{_ratio(crypto_ratio(run, row))} | {cpu} | {split} |"
        )
    return "\n".join(lines)


def overload_table(rows: list[Row]) -> str:
    lines = [
        "| scenario | c | answered | 2xx | 503 with Retry-After | other "
        "| timeouts + socket errors | p99 ms | max ms | /readyz answers again after |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        if row.result is None:
            lines.append(f"| {row.scenario} | {row.concurrency} | {row.note} | | | | | | | |")
            continue
        recovery = "—" if row.recovery_s is None else f"{row.recovery_s:.1f} s"
        r = row.result
        ok = sum(n for status, n in r.statuses.items() if 200 <= status < 300)
        other = r.answered - ok - r.retry_after
        lines.append(
            f"| {row.scenario} | {row.concurrency} | {r.answered:,} | {ok:,} | {r.retry_after:,} | "
            f"{other:,} | {r.timeouts + r.socket_errors} | {_ms(r.p99_ms)} | {_ms(r.max_ms)} "
            f"| {recovery} |"
        )
    return "\n".join(lines)


def crypto_table(run: Run) -> str:
    lines = ["| in-process work, one core | ops/s |", "|---|--:|"]
    lines += [f"| {CEILING_LABELS[k]} | {v:,.0f} |" for k, v in run.crypto.items()]
    return "\n".join(lines)


def scale_table(run: Run) -> str:
    ratios = scale_ratios(run)
    if not ratios:
        return ""
    small, large = run.scale[0].certificates, run.scale[-1].certificates
    lines = [
        f"| query | c | runs | p50 ms @ {small:,} | p50 ms @ {large:,} | ratio "
        f"| p99 ms @ {small:,} | p99 ms @ {large:,} | ratio | req/s ratio |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, c, (p50a, p99a, rpsa, runs_a), (p50b, p99b, rpsb, runs_b) in ratios:
        runs = f"{runs_a}" if runs_a == runs_b else f"{runs_a}/{runs_b}"
        lines.append(
            f"| {name} | {c} | {runs} | {_ms(p50a)} | {_ms(p50b)} | {p50b / p50a:.2f} | "
            f"{_ms(p99a)} | {_ms(p99b)} | {p99b / p99a:.2f} | {rpsb / rpsa:.2f} |"
        )
    return "\n".join(lines)


def _find(rows: list[Row], scenario: str, concurrency: int) -> Row | None:
    return next(
        (r for r in rows if r.scenario == scenario and r.concurrency == concurrency and r.result),
        None,
    )


def targets(run: Run) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each goal the issue sets; None: not measured."""
    out: list[tuple[str, str, bool | None]] = []
    ec32 = _find(run.rows, "issue ec-p256", 32)
    ratio = crypto_ratio(run, ec32) if ec32 else None
    out.append(
        (
            "issue ec-p256 ≥ 15 % of one core's crypto ceiling (c32)",
            f"{ratio:.1%}" if ratio is not None else "not measured",
            None if ratio is None else ratio >= 0.15,
        )
    )
    for name in ("fetch JSON", "fetch PEM"):
        row = _find(run.rows, name, 32)
        fr = framework_ratio(run, row) if row else None
        out.append(
            (
                f"{name} ≥ 50 % of the framework ceiling (c32)",
                f"{fr:.1%}" if fr is not None else "not measured",
                None if fr is None else fr >= 0.5,
            )
        )
    for name, limit in (("fetch JSON", 100), ("fetch PEM", 100), ("issue ec-p256", 250)):
        row = _find(run.rows, name, 32)
        p99 = row.result.p99_ms if row and row.result else None
        out.append(
            (
                f"{name} p99 < {limit} ms (c32)",
                f"{p99:.0f} ms" if p99 is not None else "not measured",
                None if p99 is None else p99 < limit,
            )
        )
    rsa1 = _find(run.rows, "issue rsa-2048", 1)
    p50 = rsa1.result.p50_ms if rsa1 and rsa1.result else None
    out.append(
        (
            "issue rsa-2048 p50 < 20 ms (c1)",
            f"{p50:.0f} ms" if p50 is not None else "not measured",
            None if p50 is None else p50 < 20,
        )
    )
    for row in run.overload:
        if row.result is None:
            continue
        r = row.result
        ok = sum(n for status, n in r.statuses.items() if 200 <= status < 300)
        unanswered = r.timeouts + r.socket_errors
        other = r.answered - ok - r.retry_after
        recovery = row.recovery_s if row.recovery_s is not None else 0.0
        out.append(
            (
                f"{row.scenario} c{row.concurrency}: every request answered 2xx or "
                "503+Retry-After, /readyz within 1 s again after < 5 s",
                f"{ok:,} 2xx, {r.retry_after:,} 503, {other} other, {unanswered} unanswered; "
                f"{recovery:.0f} s",
                unanswered == 0 and other == 0 and recovery < 5,
            )
        )
    for name, c, (p50a, p99a, _, _), (p50b, p99b, _, _) in scale_ratios(run):
        worst = max(p50b / p50a, p99b / p99a)
        out.append(
            (
                f"{name} c{c} latency at {run.scale[-1].certificates:,} "
                f"≤ 1.5x at {run.scale[0].certificates:,} (medians of alternating runs)",
                f"{worst:.2f}x",
                worst <= 1.5,
            )
        )
    return out


def targets_table(run: Run) -> str:
    lines = ["| target | measured | |", "|---|--:|---|"]
    for target, measured, met in targets(run):
        verdict = "not measured" if met is None else ("met" if met else "**missed**")
        lines.append(f"| {target} | {measured} | {verdict} |")
    return "\n".join(lines)


def markdown(run: Run) -> str:
    """The whole report: what the terminal prints and docs/performance.md embeds."""
    m = run.machine
    parts = [
        f"Run {run.started}: `{run.command}` on {m.get('nproc')} x {m.get('cpu')}, "
        f"Python {m.get('python')}, {m.get('postgresql client')}, commit {m.get('commit')}; "
        f"workers: {run.settings.get('workers')}.",
        "",
        "Scenarios (wrk, one process, closed loop; `÷ framework` = req/s over GET /healthz "
        "of the same service at the same concurrency; `÷ crypto` = req/s over the in-process "
        "single-core rate of the same key and signing work; `CPU cores`: what the service's "
        "processes, the bench database's PostgreSQL backends and the rest of the machine "
        "(wrk excluded) used during the run, so a large `rest` marks a disturbed run; "
        "`connections per worker`: how the kernel spread wrk's connections over the "
        "service's processes, a second into the run):",
        "",
        scenario_table(run, run.rows),
        "",
        "Crypto ceilings:",
        "",
        crypto_table(run),
    ]
    if run.overload:
        parts += ["", "Overload:", "", overload_table(run.overload)]
    if run.cfssl:
        parts += ["", "Side by side with cfssl:", "", scenario_table(run, run.cfssl)]
    if run.names:
        from bench import names

        parts += [
            "",
            "Name checks side by side (NAME_AUTHORIZATION required vs open, alternating runs):",
            "",
            names.table(run.names),
        ]
    if run.acme:
        from bench import acme

        parts += [
            "",
            "ACME issuance beside REST issuance (one Python client, alternating runs; "
            "certificates/s, latency and CPU per certificate):",
            "",
            acme.table(run.acme, run.rows),
        ]
    if run.scale:
        parts += ["", "Scale:", "", scale_table(run)]
    if run.plans:
        for name, plan in run.plans.items():
            parts += ["", f"EXPLAIN (ANALYZE, BUFFERS), {name}:", "", "```", plan, "```"]
    parts += ["", "Targets:", "", targets_table(run)]
    if run.notes:
        parts += ["", *[f"- {note}" for note in run.notes]]
    return "\n".join(parts) + "\n"


def save(run: Run) -> Path:
    """bench/results/<time>.json and .md (gitignored)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = run.stem
    data = asdict(run)
    data["targets"] = [{"target": t, "measured": m, "met": met} for t, m, met in targets(run)]
    path = RESULTS_DIR / f"{stem}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(markdown(run))
    return path
