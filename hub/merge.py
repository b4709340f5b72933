"""Merge the countries' aggregate submissions into the benchmark's published figures.

Input: one accepted ``Submission`` per country and the hub's indicator specs. Output: one
``Figure`` per (indicator, stratum, country), plus a pooled ``NORDIC`` figure built by
adding the Nordic countries' counts. Nodes never send rates, only integers, so pooling is
exact integer addition and every division (share, quantile, interval) happens here, once.
Pure functions over lists: the store and the report are separate modules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from emsbench.conformance import conforms, is_small
from emsbench.specs import IndicatorSpec
from emsbench.wire import MAX_JSON_INT, Cell, IndicatorResult, Submission
from hub.stats import (
    histogram_quantile,
    newcombe_difference,
    quantile_interval,
    spread_runs,
    wilson_interval,
)

NORDIC = "NORDIC"
NORDIC_COUNTRIES = ("NO", "SE", "DK", "FI", "IS")
COUNTRY_ORDER = (*NORDIC_COUNTRIES, NORDIC, "US")
# A share becomes a value in the spec's unit by this factor (minutes never applies to shares).
_SHARE_SCALE = {"percent": 100.0, "per_100k": 100_000.0, "minutes": 1.0}


class SpecMismatchError(ValueError):
    """A submission was computed with a different definition than the hub's spec."""


@dataclass(frozen=True)
class Figure:
    """One published number: an indicator in one stratum for one country (or NORDIC).

    ``n_countries`` counts the countries whose released counts contain at least one case
    and ``countries`` names them; ``omitted`` names the countries whose count for this
    stratum was withheld by their node, so a pool without them says so (``suppressed`` is
    then true too). A pooled figure whose counts are small under the strictest threshold
    of the countries in it is withheld by the hub (``suppressed``, no counts).
    """

    indicator_id: str
    spec_version: str
    unit: str
    country: str
    year: int
    stratum: str
    numerator: int | None
    denominator: int | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    suppressed: bool
    n_countries: int
    countries: tuple[str, ...] = ()
    omitted: tuple[str, ...] = ()
    decimals: int = 1  # the precision the figure's resolution supports
    # A Nordic country's share minus the share of the other Nordic countries pooled, in the
    # figure's unit (percentage points), with its interval; None where not computed.
    diff: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None

    def rounded(self, value: float | None) -> str:
        """``value`` with the decimals its resolution supports; '' when missing."""
        return "" if value is None else f"{value:.{self.decimals}f}"


def decimals(spec: IndicatorSpec) -> int:
    """Decimals a figure of ``spec`` can support: a share one (0.1 %, finer than any
    interval here); a histogram figure as many as its bin width has (1-minute bins: none,
    0.5-minute bins: one), since it is read from the bins, not from exact values."""
    if spec.bins is None:
        return 1
    return max(0, -math.floor(math.log10(spec.bins.width) + 1e-12))


@dataclass(frozen=True)
class QualityRow:
    """A country's data-quality counts as its node reported them (None = withheld)."""

    country: str
    rows_read: int | None
    rows_accepted: int | None
    rejected_by_reason: dict[str, int | None] = field(default_factory=dict)
    disclosure_threshold: int | None = None
    software_version: str = ""


def country_key(country: str) -> tuple[int, str]:
    """Sort key: the benchmark's fixed column order, unknown codes after it, alphabetically."""
    if country in COUNTRY_ORDER:
        return COUNTRY_ORDER.index(country), country
    return len(COUNTRY_ORDER), country


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that orders '5-17' before '18-64' (digit runs compare as numbers)."""
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", text) if part]


def stratum_label(stratum: dict[str, str], strata: list[str]) -> str:
    """``key=value;key=value`` in the spec's strata order; '' when the spec has no strata."""
    return ";".join(f"{k}={stratum[k]}" for k in strata)


@dataclass
class _Tally:
    """Released counts of one stratum, summed over one or more countries."""

    numerator: int = 0
    denominator: int = 0
    counts: list[float] | None = None
    n: int = 0
    suppressed: bool = False
    has_cell: bool = False
    countries: list[str] = field(default_factory=list)  # released with at least one case
    omitted: list[str] = field(default_factory=list)  # withheld by their node

    @property
    def n_countries(self) -> int:
        return len(self.countries)

    def add(self, cell: Cell, spec: IndicatorSpec, country: str = "") -> None:
        self.has_cell = True
        if spec.type == "share":
            withheld = cell.numerator is None or cell.denominator is None
            self.suppressed |= cell.suppressed or withheld
            # Add a pair only when both halves were released: adding a denominator without
            # its numerator would bias the pooled share downwards.
            if withheld:
                self.omitted.append(country)
            else:
                assert cell.numerator is not None and cell.denominator is not None
                self.numerator += cell.numerator
                self.denominator += cell.denominator
                if cell.denominator > 0:
                    self.countries.append(country)
            return
        assert spec.bins is not None
        self.suppressed |= cell.suppressed or cell.bins is None
        if cell.bins is None:
            self.omitted.append(country)
        runs = cell.bins or []
        released = spread_runs(runs, spec.bins.n_bins)
        self.counts = [a + b for a, b in zip(self.counts or [0.0] * len(released), released,
                                             strict=True)]
        cases = sum(count for _, _, count in runs)
        self.n += cases
        if cases > 0:
            self.countries.append(country)


def _figure(spec: IndicatorSpec, country: str, year: int, stratum: str, t: _Tally,
            fully_withheld: bool, threshold: int = 1) -> Figure:
    """The figure of a tally; ``threshold``: the strictest disclosure threshold of the
    countries pooled in it (1 for one country's own figure, which its node protected)."""
    value = lo = hi = None
    numerator: int | None = None
    denominator: int | None = None
    if spec.type == "share":
        if any(is_small(n, threshold) for n in (t.numerator, t.denominator,
                                                t.denominator - t.numerator)):
            # A pool may not publish what its strictest member would have withheld.
            fully_withheld, t.suppressed = True, True
        if not fully_withheld:
            numerator, denominator = t.numerator, t.denominator
        if denominator:
            assert numerator is not None
            scale = _SHARE_SCALE[spec.unit]
            value = scale * numerator / denominator
            lo, hi = (scale * b for b in wilson_interval(numerator, denominator))
    else:
        assert spec.bins is not None and spec.quantile is not None
        counts = t.counts or [0.0] * spec.bins.n_bins
        denominator = t.n
        if is_small(denominator, threshold):
            denominator, t.suppressed = None, True
        if denominator:
            b, q = spec.bins, spec.quantile
            value = histogram_quantile(counts, b.start, b.width, q)
            lo, hi = quantile_interval(counts, b.start, b.width, q)
    return Figure(spec.id, spec.version, spec.unit, country, year, stratum, numerator,
                  denominator, value, lo, hi, t.suppressed, t.n_countries,
                  tuple(sorted(t.countries, key=country_key)),
                  tuple(sorted(t.omitted, key=country_key)), decimals(spec))


def _results_by_spec(sub: Submission, specs: list[IndicatorSpec]
                     ) -> dict[tuple[str, str], IndicatorResult]:
    """The submission's results keyed by the (id, fingerprint) of the spec each was computed
    with, each checked by the one conformance rule (the ledger has checked them already;
    merging a result that does not conform would publish garbage, so the merge refuses to
    rely on its caller). A result for an indicator the hub has no spec of is ignored."""
    known = {(s.id, s.sha256): s for s in specs}
    versions: dict[str, list[str]] = {}
    for s in specs:
        versions.setdefault(s.id, []).append(s.version)
    out: dict[tuple[str, str], IndicatorResult] = {}
    for result in sub.indicators:
        if result.spec_id not in versions:
            continue
        spec = known.get((result.spec_id, result.spec_sha256))
        if spec is None:
            raise SpecMismatchError(
                f"{sub.country} submission {sub.submission_id}: spec_mismatch: "
                f"{result.spec_id} version {result.spec_version} (sha256 "
                f"{result.spec_sha256[:12]}…) is not a definition the hub knows; it knows "
                f"version(s) {', '.join(versions[result.spec_id])}")
        # The plausibility bound on counts is intake policy (the ledger applied it); here only
        # shape and disclosure matter, so any JSON-exact count is allowed.
        problems = conforms(result, spec, threshold=sub.disclosure_threshold,
                            max_count=MAX_JSON_INT)
        if problems:
            raise SpecMismatchError(f"{sub.country} submission {sub.submission_id}: "
                                    + "; ".join(str(p) for p in problems[:3]))
        out[(spec.id, spec.sha256)] = result
    return out


def _check(submissions: list[Submission], year: int) -> None:
    seen: set[str] = set()
    for sub in submissions:
        if sub.period.year != year:
            raise ValueError(f"{sub.country} submission {sub.submission_id} is for "
                             f"{sub.period.year}, not {year}")
        if sub.country in seen:
            raise ValueError(f"more than one submission from {sub.country} for {year}")
        seen.add(sub.country)


def _released(cell: Cell | None) -> tuple[int, int] | None:
    if cell is None or cell.numerator is None or cell.denominator is None:
        return None
    return cell.numerator, cell.denominator


def _difference(figure: Figure, spec: IndicatorSpec, by_country: dict[str, Cell],
                nordic: list[str], threshold: int) -> Figure:
    """A Nordic country's share figure with its difference from the rest of the Nordic
    pool (not the pool with itself in it, which would shrink the difference) and Newcombe's
    interval; unchanged unless both are released and the rest is not small under the
    pool's threshold."""
    mine = _released(by_country.get(figure.country))
    rest = [r for c in nordic if c != figure.country
            if (r := _released(by_country.get(c))) is not None]
    k2, n2 = sum(k for k, _ in rest), sum(n for _, n in rest)
    if mine is None or not mine[1] or not n2 or any(
            is_small(v, threshold) for v in (k2, n2, n2 - k2)):
        return figure
    scale = _SHARE_SCALE[spec.unit]
    d, lo, hi = newcombe_difference(mine[0], mine[1], k2, n2)
    return replace(figure, diff=scale * d, diff_low=scale * lo, diff_high=scale * hi)


def merge_indicator(results: dict[str, IndicatorResult], spec: IndicatorSpec,
                    year: int, thresholds: dict[str, int] | None = None) -> list[Figure]:
    """Figures of one spec: every country given × every stratum seen, plus NORDIC.

    ``results`` maps each country to its result computed with exactly ``spec``;
    ``thresholds`` each country's disclosure threshold (the pool applies the strictest)."""
    thresholds = thresholds or {}
    cells = {country: {stratum_label(c.stratum, spec.strata): c for c in result.cells}
             for country, result in results.items()}
    strata = sorted({s for by_stratum in cells.values() for s in by_stratum}, key=natural_key)
    figures: list[Figure] = []
    nordic = [c for c in cells if c in NORDIC_COUNTRIES]
    strictest = max((thresholds.get(c, 1) for c in nordic), default=1)
    for stratum in strata:
        here = {c: cell for c in cells if (cell := cells[c].get(stratum)) is not None}
        for country in sorted(cells, key=country_key):
            t = _Tally()
            cell = here.get(country)
            if cell is not None:
                t.add(cell, spec, country)
            # A country's own share cell with a withheld half is shown as withheld, not 0.
            withheld = cell is not None and spec.type == "share" and (
                cell.numerator is None or cell.denominator is None)
            figure = _figure(spec, country, year, stratum, t, withheld)
            if spec.type == "share" and country in nordic:
                figure = _difference(figure, spec, here, nordic, strictest)
            figures.append(figure)
        if nordic:
            pool = _Tally()
            for country in nordic:
                if (cell := here.get(country)) is not None:
                    pool.add(cell, spec, country)
            figures.append(_figure(spec, NORDIC, year, stratum, pool, False, strictest))
    return figures


def merge(submissions: list[Submission], specs: list[IndicatorSpec], year: int) -> list[Figure]:
    """All figures for ``year``, ordered by indicator (spec order), stratum, country.

    ``specs`` may hold several versions of one indicator (the hub accepts earlier catalogue
    releases): each result is merged under the exact spec it was computed with, and results
    of two definitions are never pooled into one figure. A country without a result for a
    spec gets no figure for it (intake makes a node send its release's whole catalogue, so
    that release does not define it). Indicators the hub has no spec for are ignored; a
    result that does not conform to its spec raises ``SpecMismatchError`` (``hub.ledger``
    sets such submissions aside before they get here).
    """
    _check(submissions, year)
    by_sub = [(sub, _results_by_spec(sub, specs)) for sub in submissions]
    figures: list[Figure] = []
    first_of: dict[str, IndicatorSpec] = {}
    for spec in specs:
        first_of.setdefault(spec.id, spec)
        results = {sub.country: mine[(spec.id, spec.sha256)] for sub, mine in by_sub
                   if (spec.id, spec.sha256) in mine}
        figures += merge_indicator(results, spec, year,
                                   {sub.country: sub.disclosure_threshold for sub in submissions})
    order = {s.id: i for i, s in enumerate(first_of.values())}
    rank = {(s.id, s.version): i for i, s in enumerate(specs)}
    figures.sort(key=lambda f: (order[f.indicator_id], rank[(f.indicator_id, f.spec_version)],
                                natural_key(f.stratum), country_key(f.country)))
    return figures


def data_quality_rows(submissions: Iterable[Submission]) -> list[QualityRow]:
    """Per country: rows read, rows accepted and rejections by reason, in column order."""
    rows = [QualityRow(country=s.country, rows_read=s.data_quality.rows_read,
                       rows_accepted=s.data_quality.rows_accepted,
                       rejected_by_reason=dict(s.data_quality.rejected_by_reason),
                       disclosure_threshold=s.disclosure_threshold,
                       software_version=s.software_version)
            for s in submissions]
    return sorted(rows, key=lambda r: country_key(r.country))
