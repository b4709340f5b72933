"""Every year the hub holds, merged, and how each figure changed from the year before.

The annual report and the public site show a figure beside its trend, so they need the
standing revisions of every year, not only the report year's. ``load_history`` reads the
records once, re-verifies each year's standing revisions (``hub.ledger.period_view``) and
merges them (``hub.merge.merge``); a year whose submissions cannot be merged is skipped
with its reason, so one bad year never breaks the report of another.

``change`` says whether a figure moved from one year to the next by more than chance. A
change is only computed between figures of the same spec version: a new definition breaks
the series, and the report says so instead of comparing two different measures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from emsbench.figure import Figure
from emsbench.stats import Z95, newcombe_difference
from hub.catalogues import Catalogues
from hub.config import HubConfig
from hub.ledger import PeriodView, period_view
from hub.merge import merge
from hub.source import read_records
from hub.trust import TrustRegistry


@dataclass
class Year:
    """One year's re-verified view and its merged figures."""

    view: PeriodView
    figures: list[Figure]

    @property
    def year(self) -> int:
        return self.view.year

    @cached_property
    def by_key(self) -> dict[tuple[str, str, str], list[Figure]]:
        """(indicator id, stratum, country) -> its figures (one per spec version shown)."""
        out: dict[tuple[str, str, str], list[Figure]] = {}
        for f in self.figures:
            out.setdefault((f.indicator_id, f.stratum, f.country), []).append(f)
        return out


@dataclass
class History:
    """The merged figures of every year held, oldest first, and the years left out."""

    catalogues: Catalogues
    years: list[Year]
    skipped: dict[int, str] = field(default_factory=dict)  # year -> why it is not shown

    def year(self, year: int) -> Year:
        for y in self.years:
            if y.year == year:
                return y
        held = ", ".join(str(y.year) for y in self.years) or "none"
        why = f" ({self.skipped[year]})" if year in self.skipped else ""
        raise ValueError(f"no published figures for {year}{why}; years held: {held}")

    @property
    def year_numbers(self) -> list[int]:
        return [y.year for y in self.years]

    def series(self, indicator_id: str, stratum: str, country: str,
               until: int | None = None) -> list[Figure]:
        """The figure of one indicator, stratum and country in each year held (up to
        ``until``), oldest first; a year without it has no entry."""
        out = []
        for y in self.years:
            if until is not None and y.year > until:
                break
            out += y.by_key.get((indicator_id, stratum, country), [])
        return out


def history_of(views: Iterable[PeriodView], catalogues: Catalogues) -> History:
    """Merge each view; a view with no revision at all, or one that cannot be merged, is
    skipped with its reason (a year whose revisions were all set aside or withdrawn stays:
    its report says why it has no figures)."""
    history = History(catalogues, [])
    specs = catalogues.specs()
    for view in sorted(views, key=lambda v: v.year):
        if not view.standing and not view.set_aside:
            history.skipped[view.year] = "no submission"
            continue
        try:
            figures = merge(view.submissions, specs, view.year)
        except ValueError as exc:  # SpecMismatchError and duplicate countries
            history.skipped[view.year] = str(exc)
            continue
        history.years.append(Year(view, figures))
    return history


def load_history(cfg: HubConfig) -> History:
    """Every year of the hub's database (or running hub), re-verified and merged."""
    catalogues = cfg.catalogues()
    trust = TrustRegistry.load(cfg.trust_registry)
    records = read_records(cfg)
    policy = cfg.policy.policy()
    years = sorted({r.year for r in records})
    return history_of((period_view(records, y, trust, catalogues, policy) for y in years),
                      catalogues)


@dataclass(frozen=True)
class Change:
    """A figure's change from the year before: ``diff`` = now − before in the figure's
    unit (percentage points for shares; a ratio's difference for O/E), its 95 % interval,
    and whether the interval excludes no change."""

    before: Figure
    now: Figure
    diff: float
    low: float
    high: float
    method: str  # "newcombe", "poisson", "intervals"

    @property
    def beyond_chance(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def z(self) -> float:
        """How many standard errors the change is (for ranking findings)."""
        se = (self.high - self.low) / (2 * Z95)
        return abs(self.diff) / se if se > 0 else 0.0


def change(before: Figure, now: Figure) -> Change | None:
    """The change from ``before`` to ``now`` (the same indicator version, stratum and
    country, consecutive or not), or None when either has no value or the definitions
    differ.

    Shares: Newcombe's hybrid score interval for the difference of two proportions (the
    interval the report uses for country against the rest of the Nordic pool). Rates:
    the log rate ratio's normal interval (1/k₁ + 1/k₂), shown as the rate difference's
    interval by scaling. Quantiles and O/E ratios: each year's 95 % interval gives its
    standard error ((high − low) / 3.92), and the difference's interval is ±1.96·√(se₁² +
    se₂²) (Altman & Bland, BMJ 2003;326:219); for quantiles that is an approximation, as
    their intervals are not symmetric, and the method appendix says so.
    """
    if (before.indicator_id, before.spec_version, before.stratum, before.country) != (
            now.indicator_id, now.spec_version, now.stratum, now.country):
        return None
    if before.value is None or now.value is None:
        return None
    diff = now.value - before.value
    if before.unit == "percent" and _counts(before) and _counts(now):
        assert before.numerator is not None and before.denominator is not None
        assert now.numerator is not None and now.denominator is not None
        _, lo, hi = newcombe_difference(now.numerator, now.denominator,
                                        before.numerator, before.denominator)
        return Change(before, now, diff, 100 * lo, 100 * hi, "newcombe")
    if before.unit in ("per_1000", "per_100k") and before.numerator and now.numerator:
        log_ratio = math.log(now.value / before.value)
        se = math.sqrt(1 / now.numerator + 1 / before.numerator)
        lo_r, hi_r = math.exp(log_ratio - Z95 * se), math.exp(log_ratio + Z95 * se)
        # the ratio's interval expressed on the difference scale, relative to the earlier
        return Change(before, now, diff, before.value * (lo_r - 1), before.value * (hi_r - 1),
                      "poisson")
    ses = [_se(f) for f in (before, now)]
    if any(s is None for s in ses):
        return None
    half = Z95 * math.sqrt(sum(s * s for s in ses if s is not None))
    return Change(before, now, diff, diff - half, diff + half, "intervals")


def _counts(f: Figure) -> bool:
    return f.numerator is not None and bool(f.denominator)


def _se(f: Figure) -> float | None:
    if f.ci_low is None or f.ci_high is None:
        return None
    return (f.ci_high - f.ci_low) / (2 * Z95)


def last_change(series: Sequence[Figure], year: int) -> Change | None:
    """The change into ``year`` from the latest earlier year in ``series``."""
    now = [f for f in series if f.year == year]
    before = [f for f in series if f.year < year]
    if not now or not before:
        return None
    return change(max(before, key=lambda f: f.year), now[0])
