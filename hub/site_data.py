"""The public site's open data: the published figures as CSV and JSON-stat 2.0 files.

Each year gets its own pair of files and one pair holds every year (the JSON-stat datasets
then have several values in their ``year`` dimension; a spec version that changed between
years is a dataset of its own, as two definitions are never one series). The files are
written by ``hub.export.write_csv`` and ``hub.jsonstat.write_jsonstat`` from the merged
figures only: the published numbers, a withheld figure with empty values and its status,
and nothing else a node sent (no data-quality counts, no node-side cells). ``SHA256SUMS``
beside them lets a reader check a copy (``sha256sum -c SHA256SUMS``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emsbench.figure import Figure
from emsbench.specs import IndicatorSpec
from hub.export import write_csv
from hub.history import History
from hub.jsonstat import write_jsonstat

DATA_DIR = "data"
SUMS = "SHA256SUMS"
FORMATS = ("csv", "jsonstat")
_SUFFIX = {"csv": ".csv", "jsonstat": ".jsonstat.json"}


@dataclass(frozen=True)
class Download:
    """One open-data file: ``path`` relative to the publish folder, posix style."""

    path: str
    format: str  # one of FORMATS
    year: int | None  # None: every year
    figures: int
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def file_stem(year: int | None) -> str:
    """``emsbench-figures-2025``, or ``emsbench-figures-all-years`` for every year."""
    return f"emsbench-figures-{'all-years' if year is None else year}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_set(figures: Sequence[Figure], specs: Sequence[IndicatorSpec], root: Path,
              year: int | None) -> list[Download]:
    """The CSV and JSON-stat files of ``figures`` under ``root/data``."""
    out = []
    for fmt in FORMATS:
        rel = f"{DATA_DIR}/{file_stem(year)}{_SUFFIX[fmt]}"
        path = root / rel
        if fmt == "csv":
            write_csv(figures, path)
        else:
            write_jsonstat(figures, specs, path)
        out.append(Download(rel, fmt, year, len(figures), path.stat().st_size, _digest(path)))
    return out


def write_downloads(history: History, root: Path) -> list[Download]:
    """Every year's files, newest first, after the all-years pair; and ``SHA256SUMS``."""
    specs = history.catalogues.specs()
    every = [f for y in history.years for f in y.figures]  # oldest first, as the CSV keeps
    downloads = write_set(every, specs, root, None)
    for y in reversed(history.years):
        downloads += write_set(y.figures, specs, root, y.year)
    sums = "".join(f"{d.sha256}  {d.name}\n" for d in downloads)
    (root / DATA_DIR / SUMS).write_text(sums, encoding="utf-8")
    return downloads
