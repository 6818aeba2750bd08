"""requirements.lock and requirements-dev.lock pin every dependency pyproject.toml names, at a
version its bound allows: a dependency added without `make lock` fails here, by name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, str]:
    """name -> pinned version, from `name==version` lines."""
    found = {}
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            found[canonicalize_name(match[1])] = match[2]
    return found


def declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(text) for text in project["dependencies"]]
    dev = [Requirement(text) for text in project["optional-dependencies"]["dev"]]
    return runtime, dev


@pytest.mark.parametrize(
    ("lock_name", "with_dev"), [("requirements.lock", False), ("requirements-dev.lock", True)]
)
def test_the_lock_pins_every_declared_dependency_within_its_bound(
    lock_name: str, with_dev: bool
) -> None:
    locked = pins(ROOT / lock_name)
    runtime, dev = declared()
    problems = []
    for requirement in runtime + (dev if with_dev else []):
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not in {lock_name}")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {requirement.specifier}")
    assert not problems, "; ".join(problems) + ": run `make lock`"
    if not with_dev:
        assert "pytest" not in locked  # the runtime lock carries no test tools


def test_the_runtime_lock_holds_what_the_account_services_gevent_worker_imports() -> None:
    # `make run` installs requirements.lock alone: Gunicorn's gevent worker imports
    # `packaging`, which only its `gevent` extra declares (the dev lock has it through pytest).
    locked = pins(ROOT / "requirements.lock")
    assert {"gevent", "packaging"} <= locked.keys()
