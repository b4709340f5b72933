"""The report's layout as data (``hub/layout.toml``): chapters in order with their
indicators, and the executive summary's key statistics.

Kept out of the specs on purpose: a spec is a signed, versioned definition that nodes run,
and where the hub prints it is the hub's editorial choice, which must change without a new
catalogue release.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

OTHER = "other"


@dataclass(frozen=True)
class Layout:
    chapters: tuple[tuple[str, tuple[str, ...]], ...]  # (chapter id, indicator ids)
    key_statistics: tuple[str, ...]
    urgency_mix: tuple[str, ...]
    findings: int

    def chapter_of(self, indicator_id: str) -> str:
        for chapter, ids in self.chapters:
            if indicator_id in ids:
                return chapter
        return OTHER

    def arrange(self, indicator_ids: Sequence[str]) -> list[tuple[str, list[str]]]:
        """The given indicators by chapter in layout order; the unplaced last, under
        ``other``, in the order given. Chapters with none of them are left out."""
        out = [(c, [i for i in ids if i in indicator_ids]) for c, ids in self.chapters]
        placed = {i for _, ids in self.chapters for i in ids}
        out.append((OTHER, [i for i in dict.fromkeys(indicator_ids) if i not in placed]))
        return [(c, ids) for c, ids in out if ids]


@cache
def layout() -> Layout:
    text = resources.files("hub").joinpath("layout.toml").read_text("utf-8")
    data = tomllib.loads(text)
    summary = data.get("summary", {})
    return Layout(chapters=tuple((c, tuple(ids)) for c, ids in data["chapters"].items()),
                  key_statistics=tuple(summary.get("key_statistics", ())),
                  urgency_mix=tuple(summary.get("urgency_mix", ())),
                  findings=int(summary.get("findings", 5)))
