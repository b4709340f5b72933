"""Distribution: a value per case (a time in minutes) binned on the spec's fixed bins; the
published figure is a quantile.

Cell: ``bins``, runs ``[first_bin, last_bin, count]``. Protection: neighbouring non-empty
bins are joined into runs until each run holds at least the threshold (a short tail joins
the run before it), so every released count is large, the total stays exact and the hub can
still pool and interpolate; only a cell with fewer cases than the threshold in all is
withheld. Merge: per-bin counts add (a coarsened run spread evenly over its bins); the hub
reads the quantile and its interval off the pooled histogram.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emsbench.figure import Figure
from emsbench.kinds.base import (
    Context,
    Kind,
    Pool,
    Problem,
    Tally,
    group_by,
    is_small,
    merge_by_stratum,
    population_filter,
    strata_select,
)
from emsbench.stats import histogram_quantile, quantile_interval, spread_runs
from emsbench.wire import BinRun, Cell

if TYPE_CHECKING:
    from emsbench.specs import IndicatorSpec


def coarsen(runs: list[BinRun], threshold: int) -> list[BinRun] | None:
    """Join ascending runs until each holds ``threshold`` or more; None if the total is less."""
    out: list[BinRun] = []
    first = last = total = 0
    for f, la, count in runs:
        if count == 0:
            continue
        if total == 0:
            first = f
        total, last = total + count, la
        if total >= threshold:
            out.append((first, last, total))
            total = 0
    if total:  # a tail under the threshold joins the run before it
        if not out:
            return None
        f, _, count = out[-1]
        out[-1] = (f, last, count + total)
    return out


def sparse_bins(runs: Sequence[BinRun]) -> dict[int, int]:
    """Single-bin runs as bin index → count (how spec test cases write histograms)."""
    assert all(first == last for first, last, _ in runs), "runs were coarsened"
    return {first: count for first, _, count in runs}


@dataclass
class DistributionTally(Tally):
    counts: list[float] = field(default_factory=list)
    n: int = 0

    def add(self, spec: IndicatorSpec, cell: Cell, country: str) -> None:
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

    def values(self, spec: IndicatorSpec, threshold: int, own: bool
               ) -> tuple[int | None, int | None, float | None, float | None, float | None]:
        assert spec.bins is not None and spec.quantile is not None
        if is_small(self.n, threshold):
            self.suppressed = True
            return None, None, None, None, None
        if not self.n:
            return None, 0, None, None, None
        b, q = spec.bins, spec.quantile
        lo, hi = quantile_interval(self.counts, b.start, b.width, q)
        return None, self.n, histogram_quantile(self.counts, b.start, b.width, q), lo, hi


class Distribution(Kind):
    name = "distribution"
    needs = ("measure", "bins", "quantile")
    units = ("minutes",)
    expect_fields = ("bins",)
    summary = "a quantile of a value per case, read off fixed bins"

    def aggregate_sql(self, spec: IndicatorSpec, table: str) -> str:
        assert spec.bins is not None
        b, k = spec.bins, len(spec.strata)
        value = f"CAST(({spec.measure}) AS DOUBLE)"
        bin_expr = f"least(CAST(floor((v - {b.start!r}) / {b.width!r}) AS INTEGER), {b.count})"
        return (f"WITH m AS (SELECT {strata_select(spec)}{value} AS v FROM {table} "
                f"WHERE {population_filter(spec)}) "
                f"SELECT {''.join(f's_{i}, ' for i in range(k))}"
                f"{bin_expr} AS bin, count(*) AS n FROM m "
                f"WHERE v IS NOT NULL AND v >= {b.start!r}{group_by(k, 'bin')}")

    def cells(self, spec: IndicatorSpec, rows: Sequence[tuple[Any, ...]],
              ctx: Context) -> list[Cell]:
        k = len(spec.strata)
        # One run per non-empty bin; disclosure control may later join runs.
        hist: dict[tuple[str, ...], list[BinRun]] = {}
        for r in rows:
            b, n = int(r[k]), int(r[k + 1])
            hist.setdefault(tuple(map(str, r[:k])), []).append((b, b, n))
        return [Cell(stratum=dict(zip(spec.strata, key, strict=True)), bins=sorted(runs))
                for key, runs in hist.items()]

    def empty_cell(self, spec: IndicatorSpec, stratum: dict[str, str], ctx: Context) -> Cell:
        return Cell(stratum=stratum, bins=[])

    def protect(self, spec: IndicatorSpec, cell: Cell, threshold: int) -> Cell:
        runs = coarsen(list(cell.bins or []), threshold)
        return cell.model_copy(update={"bins": runs, "suppressed": runs is None})

    def summary_of(self, spec: IndicatorSpec, cell: Cell) -> dict[str, Any]:
        return {"stratum": cell.stratum, "numerator": None, "denominator": None,
                "bins": sparse_bins(cell.bins or [])}

    def describe(self, spec: IndicatorSpec, summary: Mapping[str, Any]) -> str:
        bins = summary["bins"] or {}
        return "bins " + (", ".join(f"{i}: {n}" for i, n in sorted(bins.items())) or "none")

    def differences(self, spec: IndicatorSpec, label: str, want: Mapping[str, Any],
                    got: Mapping[str, Any]) -> list[str]:
        wb, gb = want["bins"] or {}, got["bins"] or {}
        return [f"{label}: {bin_label(spec, i)} expected {wb.get(i, 0)}, got {gb.get(i, 0)}"
                for i in sorted(set(wb) | set(gb)) if wb.get(i, 0) != gb.get(i, 0)]

    def local_value(self, spec: IndicatorSpec, cell: Cell) -> float | None:
        assert spec.bins is not None and spec.quantile is not None
        counts = spread_runs(cell.bins or [], spec.bins.n_bins)
        if not sum(counts):
            return None
        return histogram_quantile(counts, spec.bins.start, spec.bins.width, spec.quantile)

    def local_columns(self, spec: IndicatorSpec) -> tuple[list[str], str]:
        return ["n"], f"q{spec.quantile:g} ({spec.unit})"

    def local_counts(self, spec: IndicatorSpec, cell: Cell) -> list[int | None]:
        return [sum(r[2] for r in cell.bins or [])]

    def wire_problem(self, cell: Cell) -> str | None:
        if cell.numerator is not None or cell.denominator is not None:
            return "a distribution cell carries bins, not numerator or denominator"
        return None

    def cell_problems(self, spec: IndicatorSpec, cell: Cell, where: str, threshold: int,
                      max_count: int) -> list[Problem]:
        assert spec.bins is not None
        if cell.suppressed != (cell.bins is None):
            return [Problem("suppression_inconsistent", f"{where}: a distribution cell is "
                            "either withheld (suppressed, bins null) or has bins")]
        p: list[Problem] = []
        previous = -1
        for first, last, count in cell.bins or []:
            if not previous < first <= last < spec.bins.n_bins:
                p.append(Problem("invalid_bins", f"{where}: run {[first, last, count]} is out "
                                 f"of order, overlaps or lies beyond the spec's "
                                 f"{spec.bins.n_bins} bins"))
                break
            previous = last
        counts = [c for _, _, c in cell.bins or []]
        if sum(counts) > max_count:
            p.append(Problem("count_out_of_range", f"{where}: {sum(counts)} cases exceed the "
                             f"plausible maximum {max_count}"))
        small = [c for c in counts if is_small(c, threshold)]
        if small:
            p.append(Problem("disclosure_violation", f"{where}: {len(small)} histogram "
                             f"run(s) hold 1 to {threshold - 1} cases"))
        return p

    def merge(self, spec: IndicatorSpec, results: Mapping[str, Sequence[Cell]], year: int,
              pool: Pool) -> list[Figure]:
        return merge_by_stratum(spec, results, year, pool, DistributionTally)

    def measure_text(self, spec: IndicatorSpec, unit_text: str) -> str:
        q = round((spec.quantile or 0.5) * 100)
        return f"{'Median' if q == 50 else f'{q}th percentile'} ({unit_text})"


def bin_label(spec: IndicatorSpec, index: int) -> str:
    assert spec.bins is not None
    b = spec.bins
    lo = b.start + index * b.width
    return f"bin {index} [{lo:g}, ∞)" if index >= b.count else \
        f"bin {index} [{lo:g}, {lo + b.width:g})"


DISTRIBUTION = Distribution()
