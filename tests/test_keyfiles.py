"""Development secrets generated on first start: many starters at once agree on one."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from schema import keyfiles


def test_concurrent_first_starts_all_read_the_same_whole_secret(tmp_path: Path) -> None:
    for round_ in range(20):  # a race: give it many chances to show
        first_start(tmp_path / f"var{round_}" / "secret")


def first_start(path: Path) -> None:
    start = threading.Barrier(32)
    seen: list[bytes] = []

    def starter() -> None:
        start.wait()
        seen.append(keyfiles._read_or_create(path, os.urandom(64)))

    threads = [threading.Thread(target=starter) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 32
    assert len(set(seen)) == 1 and len(seen[0]) == 64  # one winner, never an empty read
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no staging files left
