"""Per country, what the figures rest on: data source, rows, population, rejections,
suppressed cells; and the provenance of every year's figures.

Everything here comes from the standing signed submissions (``hub.ledger``): the source a
node declared (wire 2.2 ``source``), its data-quality counts (which passed the node's
small-count rule, so a withheld count shows as "suppressed"), the population its rates
divided by (the denominator of the population-based rate the layout's first key statistic
uses, else any rate), and how many of its released cells are withheld.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from emsbench.figure import Figure
from emsbench.wire import DataSource, Submission
from hub.history import History
from hub.merge import country_key
from hub.messages import Messages


@dataclass
class CountryNote:
    country: str
    name: str
    source: DataSource | None
    rows_read: int | None
    rows_accepted: int | None
    threshold: int
    software: str
    population: int | None
    rejected: list[tuple[str, int | None]] = field(default_factory=list)  # (words, rows)
    suppressed_cells: int = 0
    cells: int = 0

    @property
    def accepted_share(self) -> float | None:
        if self.rows_read and self.rows_accepted is not None:
            return 100 * self.rows_accepted / self.rows_read
        return None


def _population(figures: Sequence[Figure], country: str) -> int | None:
    rates = [f for f in figures if f.country == country and f.unit in ("per_1000", "per_100k")
             and f.stratum == "" and f.denominator]
    return max((f.denominator for f in rates if f.denominator), default=None)


def country_notes(submissions: Sequence[Submission], figures: Sequence[Figure],
                  m: Messages) -> list[CountryNote]:
    notes = []
    for sub in sorted(submissions, key=lambda s: country_key(s.country)):
        q = sub.data_quality
        mine = [f for f in figures if f.country == sub.country]
        notes.append(CountryNote(
            country=sub.country, name=m.country(sub.country), source=sub.source,
            rows_read=q.rows_read, rows_accepted=q.rows_accepted,
            threshold=sub.disclosure_threshold, software=sub.software_version,
            population=_population(figures, sub.country),
            rejected=[(m.reason(code), n) for code, n in sorted(q.rejected_by_reason.items())],
            suppressed_cells=sum(f.suppressed for f in mine),
            cells=sum(1 for f in mine if f.denominator or f.suppressed)))
    return notes


def synthetic(history: History) -> bool:
    """True when any standing submission of any year says its data are synthetic."""
    return any(s.source is not None and s.source.synthetic
               for y in history.years for s in y.view.submissions)
