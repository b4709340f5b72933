"""Merge the countries' aggregate submissions into the benchmark's published figures.

Input: one accepted ``Submission`` per country and the hub's indicator specs. Output: one
``Figure`` per (indicator, stratum, country), plus a pooled ``NORDIC`` figure built by
adding the Nordic countries' counts. How a spec's cells merge is its kind's rule
(``emsbench.kinds``); this module checks the submissions, picks each result's spec and
applies the federation's pool. Nodes send counts, so pooling is exact addition and every
division (share, quantile, interval) happens at the hub, once. Pure functions over lists:
the store and the report are separate modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from emsbench.conformance import conforms
from emsbench.figure import Figure, natural_key, stratum_label
from emsbench.kinds import Pool, kind_of
from emsbench.specs import IndicatorSpec
from emsbench.wire import MAX_JSON_INT, IndicatorResult, Submission

NORDIC = "NORDIC"
NORDIC_COUNTRIES = ("NO", "SE", "DK", "FI", "IS")
COUNTRY_ORDER = (*NORDIC_COUNTRIES, NORDIC, "US")

__all__ = ["Figure", "QualityRow", "SpecMismatchError", "country_key", "data_quality_rows",
           "merge", "merge_indicator", "natural_key", "stratum_label"]


class SpecMismatchError(ValueError):
    """A submission was computed with a different definition than the hub's spec."""


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


def merge_indicator(results: dict[str, IndicatorResult], spec: IndicatorSpec,
                    year: int, thresholds: dict[str, int] | None = None) -> list[Figure]:
    """Figures of one spec: every country given × every stratum seen, plus NORDIC, as the
    spec's kind merges them.

    ``results`` maps each country to its result computed with exactly ``spec``;
    ``thresholds`` each country's disclosure threshold (the pool applies the strictest)."""
    thresholds = thresholds or {}
    countries = sorted(results, key=country_key)
    nordic = tuple(c for c in countries if c in NORDIC_COUNTRIES)
    pool = Pool(NORDIC, nordic, max((thresholds.get(c, 1) for c in nordic), default=1))
    return kind_of(spec).merge(spec, {c: results[c].cells for c in countries}, year, pool)


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
