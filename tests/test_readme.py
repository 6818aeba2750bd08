"""The README promises only what the docs it points to hold."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _paragraphs(text: str) -> list[str]:
    return [p.lower() for p in re.split(r"\n\s*\n", text)]


def _topics(readme: str) -> list[str]:
    """What the README says docs/operations.md "covers"."""
    paragraph = next(p for p in _paragraphs(readme) if "docs/operations.md" in p)
    listed = re.search(r"covers ([^.]+)\.", " ".join(paragraph.split()))
    assert listed, paragraph
    return [t.strip() for t in re.split(r",\s*|\s+and\s+", listed.group(1)) if t.strip()]


def test_every_topic_the_readme_says_operations_covers_is_there() -> None:
    topics = _topics((ROOT / "README.md").read_text())
    assert topics
    paragraphs = _paragraphs((ROOT / "docs" / "operations.md").read_text())
    for topic in topics:
        stems = [word[:5] for word in re.findall(r"[a-z]+", topic) if len(word) > 2]
        assert any(all(stem in p for stem in stems) for p in paragraphs), topic
