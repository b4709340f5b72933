"""Distribution: a value per case (a time in minutes), published as a quantile.

Quantile definition: Hyndman–Fan type 7 (R's default, numpy's ``linear``, DuckDB's
``quantile_cont``): of n sorted values x₁ … xₙ the p-quantile is x at rank h = (n − 1)·p + 1,
interpolated linearly between x₍⌊h⌋₎ and x₍⌈h⌉₎.

Cell: ``bins``, runs ``[first_bin, last_bin, count]`` over the spec's fixed bins, and
``quantiles``, the cell's median and its spec quantile computed exactly at the node (type 7
on the raw values, keys "0.5" and the spec's quantile).

Protection: on the spec's fixed lattice of band edges (``Bins.bands``). The node adds up
whole bands from the first bin on and closes a run as soon as it holds the threshold or
more; what is left at the end (fewer than the threshold, or nothing) joins the last run,
which therefore always ends at the open bin. Runs tile every bin: each starts at a band edge
(where the run before it ended) and ends just before one, wherever the data lie, so an edge
shows at most that the band closing a run holds a case, at band resolution, and neither the
smallest nor the largest value shows. A cell with fewer cases than the threshold in all is
withheld, and its exact quantiles with it. An exact quantile is sent only when at least
the threshold of cases lie at or below its lower order statistic and at least the threshold
at or above its upper one (``exact_allowed``): with 3 cases the type-7 P90 is nearly the
largest value, one patient's own time.

Merge: each country's figure is its node's exact value ("exact"; the histogram's value for
a result without one, such as one computed with an earlier spec version); the pool's figure
is read off the pooled histogram (a run's cases spread evenly over its bins) at the type-7
rank ("histogram"). Every interval is the exact binomial order-statistic interval
[x₍l₎, x₍u₎] (``stats.quantile_rank_interval``) widened to the edges of the released runs the
two order statistics certainly lie in: the lower edge of the bin holding x₍l₎ and the upper
edge of the one holding x₍u₎ wherever runs are single bins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from emsbench.figure import Figure, spec_decimals
from emsbench.kinds.base import (
    Context,
    Kind,
    Loc,
    MarginKey,
    Partial,
    Pool,
    Problem,
    Tally,
    group_by,
    is_small,
    merge_by_stratum,
    population_filter,
    strata_select,
)
from emsbench.spec_language import normal_form
from emsbench.stats import quantile_rank_interval, spread_runs, value_at_rank
from emsbench.wire import BinRun, Cell

if TYPE_CHECKING:
    from emsbench.specs import Bins, IndicatorSpec

CONFIDENCE = 0.95
# A node's exact value is computed from times recorded to the second: 0.01 minute (0.6 s)
# is the coarsest decimal step that keeps a second apart, so an exact figure in minutes gets
# two decimals (or the bins' own, where those are finer).
EXACT_DECIMALS = 2
# Rounding slack when a value is compared with a bin edge (edges are start + i·width).
EDGE_SLACK = 1e-6


def quantile_key(p: float) -> str:
    """The wire key of probability ``p``: "0.5", "0.9", "0.975"."""
    return f"{p:g}"


def quantile_probs(spec: IndicatorSpec) -> tuple[float, ...]:
    """The probabilities a node computes exactly: the median and the spec's quantile."""
    assert spec.quantile is not None
    return (0.5,) if spec.quantile == 0.5 else (0.5, spec.quantile)


def band_of_bins(starts: Sequence[int], n_bins: int) -> list[int]:
    """Bin index → index of the band (of the lattice ``starts``) the bin belongs to."""
    out = []
    band = -1
    for b in range(n_bins):
        if band + 1 < len(starts) and starts[band + 1] == b:
            band += 1
        out.append(band)
    return out


def coarsen(runs: Sequence[BinRun], threshold: int, bins: Bins | None = None
            ) -> list[BinRun] | None:
    """Runs of at least ``threshold`` cases on the lattice of ``bins``; [] for no case,
    None when the cell holds fewer than ``threshold`` cases (it is withheld).

    Whole bands are added up from bin 0; a run closes at the end of the band that brings it
    to ``threshold`` or more (never inside a run given, which may span bands); the rest
    joins the last run, which ends at the open bin. Runs tile every bin, so no edge depends
    on where a value lies finer than a band. Without ``bins`` every bin is a band and the
    last bin given stands for the open bin."""
    total = sum(count for _, _, count in runs)
    if total == 0:
        return []
    if total < threshold:
        return None
    if bins is None:
        n_bins = max(last for _, last, _ in runs) + 1
        starts: Sequence[int] = range(n_bins)
    else:
        n_bins, starts = bins.n_bins, bins.band_starts
    band = band_of_bins(starts, n_bins)
    counts = [0] * len(starts)
    joined = [False] * len(starts)  # a given run crosses from this band into the next
    for first, last, count in runs:
        counts[band[first]] += count
        for b in range(band[first], band[last]):
            joined[b] = True
    out: list[BinRun] = []
    first_bin = acc = 0
    for b, count in enumerate(counts):
        acc += count
        if acc >= threshold and not joined[b]:
            last_bin = (starts[b + 1] if b + 1 < len(starts) else n_bins) - 1
            out.append((first_bin, last_bin, acc))
            first_bin, acc = last_bin + 1, 0
    if first_bin < n_bins:  # a short tail (or empty bands) joins the run before it
        first, _, count = out[-1]
        out[-1] = (first, n_bins - 1, count + acc)
    return out


def off_lattice(runs: Sequence[BinRun], bins: Bins) -> list[BinRun]:
    """Runs that do not start at a band edge or do not end just before one (or at the open
    bin)."""
    starts = set(bins.band_starts)
    return [r for r in runs if r[0] not in starts
            or not (r[1] + 1 in starts or r[1] == bins.n_bins - 1)]


def sparse_bins(runs: Sequence[BinRun]) -> dict[int, int]:
    """Single-bin runs as bin index → count (how spec test cases write histograms)."""
    assert all(first == last for first, last, _ in runs), "runs were coarsened"
    return {first: count for first, _, count in runs}


def edge(bins: Bins, index: int) -> float:
    return bins.start + index * bins.width


def cumulative(runs: Sequence[BinRun], n_bins: int) -> tuple[list[int], list[int]]:
    """For every bin edge e (0 … n_bins − 1): the cases certainly below it (in runs that
    end before e) and the cases possibly below it (in runs that start before e)."""
    ends, begins = [0] * (n_bins + 1), [0] * (n_bins + 1)
    for first, last, count in runs:
        ends[last + 1] += count
        begins[first + 1] += count
    surely, maybe = [0] * n_bins, [0] * n_bins
    s = m = 0
    for e in range(n_bins):
        s, m = s + ends[e], m + begins[e]
        surely[e], maybe[e] = s, m
    return surely, maybe


def order_statistic_bounds(runs: Sequence[BinRun], bins: Bins, low: int, high: int
                           ) -> tuple[float, float]:
    """(a, b) with a ≤ x₍low₎ and x₍high₎ ≤ b for every sample the runs can stand for (ranks
    1-based): a is the highest bin edge with fewer than ``low`` cases possibly below it, b
    the lowest with at least ``high`` cases certainly below it. A rank under 1 gives the
    bins' start; an order statistic that may lie in the open bin gives its lower edge (the
    interval is open above; shown, like values there, as that edge)."""
    surely, maybe = cumulative(runs, bins.n_bins)
    a = 0
    if low >= 1:
        a = max(e for e in range(bins.n_bins) if maybe[e] <= low - 1)
    b = next((e for e in range(1, bins.n_bins) if surely[e] >= high), bins.count)
    return edge(bins, a), edge(bins, b)


def type7_rank(n: float, p: float) -> float:
    """The type-7 rank of the p-quantile on ``value_at_rank``'s scale, where the i-th of a
    bin's cases sits at rank i − ½ (its cases evenly spaced over the bin): (n − 1)·p + ½."""
    return (n - 1) * p + 0.5


@dataclass
class DistributionTally(Tally):
    counts: list[float] = field(default_factory=list)
    runs: list[BinRun] = field(default_factory=list)
    exact: dict[str, float] = field(default_factory=dict)
    n: int = 0
    method: str = ""

    def add(self, spec: IndicatorSpec, cell: Cell, country: str) -> None:
        assert spec.bins is not None
        self.suppressed |= cell.suppressed or cell.bins is None
        if cell.bins is None:
            self.omitted.append(country)
        runs = cell.bins or []
        released = spread_runs(runs, spec.bins.n_bins)
        self.counts = [a + b for a, b in zip(self.counts or [0.0] * len(released), released,
                                             strict=True)]
        self.runs += runs
        self.exact = dict(cell.quantiles or {})  # one cell's: read for a country's own figure
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
        exact = self.exact.get(quantile_key(q)) if own else None
        if exact is not None:
            value, self.method = exact, "exact"
        else:
            value = value_at_rank(self.counts, b.start, b.width, type7_rank(self.n, q))
            self.method = "histogram"
        low, high = quantile_rank_interval(self.n, q, CONFIDENCE)
        lo, hi = order_statistic_bounds(self.runs, b, low, high)
        return None, self.n, value, lo, hi

    def figure(self, spec: IndicatorSpec, country: str, year: int, stratum: str,
               threshold: int, own: bool, order: Callable[[str], Any]) -> Figure:
        f = super().figure(spec, country, year, stratum, threshold, own, order)
        decimals = (max(EXACT_DECIMALS, spec_decimals(spec)) if self.method == "exact"
                    else spec_decimals(spec))
        return replace(f, method=self.method, decimals=decimals)


class Distribution(Kind):
    name = "distribution"
    needs = ("measure", "bins", "quantile")
    units = ("minutes",)
    expect_fields = ("bins",)
    summary = "a quantile (Hyndman–Fan type 7) of a value per case, exact per country"

    def spec_problems(self, spec: IndicatorSpec) -> list[tuple[Loc, str]]:
        out = super().spec_problems(spec)
        q = spec.quantile
        if q is not None and round(q, 3) != q:
            out.append((("quantile",), f"quantile {q} must have at most three decimals "
                        "(it keys the exact value on the wire)"))
        return out

    def aggregate_sql(self, spec: IndicatorSpec, table: str) -> str:
        assert spec.bins is not None
        b, k = spec.bins, len(spec.strata)
        value = f"CAST(({spec.measure}) AS DOUBLE)"
        keys = "".join(f"s_{i}, " for i in range(k))
        bin_expr = f"least(CAST(floor((v - {b.start!r}) / {b.width!r}) AS INTEGER), {b.count})"
        probs = ", ".join(repr(p) for p in quantile_probs(spec))
        # The histogram and the exact quantiles (quantile_cont is type 7; never the
        # approximate quantile, which is not repeatable) of the same values, per stratum.
        join = (f"JOIN q USING ({', '.join(f's_{i}' for i in range(k))})" if k
                else "CROSS JOIN q")
        return (f"WITH m AS (SELECT {strata_select(spec)}{value} AS v FROM {table} "
                f"WHERE {population_filter(spec)}), "
                f"d AS (SELECT * FROM m WHERE v IS NOT NULL AND v >= {b.start!r}), "
                f"h AS (SELECT {keys}{bin_expr} AS bin, count(*) AS n FROM d"
                f"{group_by(k, 'bin')}), "
                f"q AS (SELECT {keys}quantile_cont(v, [{probs}]) AS qs FROM d{group_by(k)}) "
                f"SELECT {keys}bin, n, qs FROM h {join}")

    def partials(self, spec: IndicatorSpec) -> tuple[Partial, ...]:
        # The count of each value: bins and exact quantiles both follow from it, and two
        # specs on one distribution (median, 90th centile) share it.
        assert spec.bins is not None
        value = f"CAST(({spec.measure}) AS DOUBLE)"
        return (Partial((population_filter(spec), f"{value} IS NOT NULL",
                         f"{value} >= {spec.bins.start!r}"), value=value),)

    def rows(self, spec: IndicatorSpec, merged: Mapping[tuple[str, ...], Sequence[Any]],
             con: Any) -> list[tuple[Any, ...]]:
        from emsbench.batch import exact_quantiles

        assert spec.bins is not None
        b = spec.bins
        out: list[tuple[Any, ...]] = []
        for key, (counts,) in merged.items():
            if not counts:
                continue
            qs = exact_quantiles(con, counts, quantile_probs(spec))
            hist: dict[int, int] = {}
            for value, n in counts.items():
                # As aggregate_sql bins: least(CAST(floor((v - start) / width) AS INT), count)
                i = min(math.floor((value - b.start) / b.width), b.count)
                hist[i] = hist.get(i, 0) + n
            out += [(*key, i, n, qs) for i, n in sorted(hist.items())]
        return out

    def cells(self, spec: IndicatorSpec, rows: Sequence[tuple[Any, ...]],
              ctx: Context) -> list[Cell]:
        k = len(spec.strata)
        keys = [quantile_key(p) for p in quantile_probs(spec)]
        # One run per non-empty bin; disclosure control joins them into runs on the lattice.
        hist: dict[tuple[str, ...], list[BinRun]] = {}
        exact: dict[tuple[str, ...], dict[str, float]] = {}
        for r in rows:
            b, n = int(r[k]), int(r[k + 1])
            stratum = tuple(map(str, r[:k]))
            hist.setdefault(stratum, []).append((b, b, n))
            exact[stratum] = {key: float(v) for key, v in zip(keys, r[k + 2], strict=True)}
        return [Cell(stratum=dict(zip(spec.strata, key, strict=True)), bins=sorted(runs),
                     quantiles=exact[key])
                for key, runs in hist.items()]

    def empty_cell(self, spec: IndicatorSpec, stratum: dict[str, str], ctx: Context) -> Cell:
        return Cell(stratum=stratum, bins=[])

    def protect(self, spec: IndicatorSpec, cell: Cell, threshold: int) -> Cell:
        assert spec.bins is not None
        runs = coarsen(list(cell.bins or []), threshold, spec.bins)
        # Exact quantiles only of a released cell, each only with enough cases either side.
        n = sum(c for _, _, c in runs or [])
        kept = {key: v for key, v in (cell.quantiles or {}).items()
                if exact_allowed(n, float(key), threshold)}
        quantiles = kept if runs and kept else None
        return cell.model_copy(update={"bins": runs, "suppressed": runs is None,
                                       "quantiles": quantiles})

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

    def margin_counts(self, spec: IndicatorSpec, cell: Cell
                      ) -> list[tuple[str, MarginKey, int | None]]:
        assert spec.bins is not None and spec.measure is not None
        total = None if cell.bins is None else sum(count for _, _, count in cell.bins)
        return [("cases", ("t", normal_form(spec.measure), repr(spec.bins.start)), total)]

    def local_value(self, spec: IndicatorSpec, cell: Cell) -> float | None:
        assert spec.bins is not None and spec.quantile is not None
        exact = (cell.quantiles or {}).get(quantile_key(spec.quantile))
        if exact is not None:
            return exact
        counts = spread_runs(cell.bins or [], spec.bins.n_bins)
        n = sum(counts)
        if not n:
            return None
        return value_at_rank(counts, spec.bins.start, spec.bins.width,
                             type7_rank(n, spec.quantile))

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
        if cell.bins is None:
            if cell.quantiles is not None:
                return [Problem("suppression_inconsistent", f"{where}: a withheld "
                                "distribution cell carries exact quantiles")]
            return []
        p: list[Problem] = []
        previous = -1
        ordered = True
        for first, last, count in cell.bins:
            if not previous < first <= last < spec.bins.n_bins:
                p.append(Problem("invalid_bins", f"{where}: run {[first, last, count]} is out "
                                 f"of order, overlaps or lies beyond the spec's "
                                 f"{spec.bins.n_bins} bins"))
                ordered = False
                break
            previous = last
        if ordered:
            off = off_lattice(cell.bins, spec.bins)
            if off:
                p.append(Problem("run_off_lattice", f"{where}: {len(off)} histogram run(s), "
                                 f"the first {list(off[0])}, do not start and end on the "
                                 "spec's band edges"))
        counts = [c for _, _, c in cell.bins]
        n = sum(counts)
        if n > max_count:
            p.append(Problem("count_out_of_range", f"{where}: {n} cases exceed the "
                             f"plausible maximum {max_count}"))
        small = [c for c in counts if is_small(c, threshold)]
        if small:
            p.append(Problem("disclosure_violation", f"{where}: {len(small)} histogram "
                             f"run(s) hold 1 to {threshold - 1} cases"))
        if cell.quantiles is not None:
            p += self._quantile_problems(spec, cell, where, threshold, ordered)
        return p

    def _quantile_problems(self, spec: IndicatorSpec, cell: Cell, where: str,
                           threshold: int, ordered: bool) -> list[Problem]:
        """Exact quantiles: only the median and the spec's quantile, only of a cell with at
        least the threshold of cases, and each inside the runs its type-7 order statistics
        lie in (so the value is the quantile the histogram says, not a value of one case
        elsewhere, nor anything else a node might put in a number)."""
        assert spec.bins is not None and cell.quantiles is not None and cell.bins is not None
        allowed = {quantile_key(p): p for p in quantile_probs(spec)}
        unknown = sorted(set(cell.quantiles) - set(allowed))
        if unknown:
            return [Problem("invalid_quantiles", f"{where}: exact quantiles {unknown}; a "
                            f"cell carries only {sorted(allowed)}")]
        n = sum(c for _, _, c in cell.bins)
        if n == 0:
            return [Problem("invalid_quantiles", f"{where}: exact quantiles of a cell "
                            "without cases")]
        if n < threshold:
            return [Problem("disclosure_violation", f"{where}: exact quantiles of {n} "
                            f"cases, fewer than the threshold {threshold}")]
        near_edge = sorted(k for k in cell.quantiles
                           if not exact_allowed(n, allowed[k], threshold))
        if near_edge:
            return [Problem("disclosure_violation", f"{where}: exact quantile(s) {near_edge} "
                            f"of {n} cases have fewer than {threshold} cases on one side: "
                            "they are nearly one case's own value")]
        if not ordered:
            return []
        p: list[Problem] = []
        b = spec.bins
        for key, prob in allowed.items():
            value = cell.quantiles.get(key)
            if value is None:
                continue
            h = (n - 1) * prob + 1
            lo, hi = run_edges_of_ranks(cell.bins, b, math.floor(h), math.ceil(h))
            slack = EDGE_SLACK * b.width
            if not lo - slack <= value <= hi + slack:
                top = "∞" if math.isinf(hi) else f"{hi:g}"
                p.append(Problem("invalid_quantiles", f"{where}: exact quantile {key} = "
                                 f"{value:g} lies outside [{lo:g}, {top}], the runs holding "
                                 f"its order statistics (ranks {math.floor(h)} and "
                                 f"{math.ceil(h)} of {n})"))
        values = [cell.quantiles[k] for k, _ in sorted(allowed.items(), key=lambda kv: kv[1])
                  if k in cell.quantiles]
        if values != sorted(values):
            p.append(Problem("invalid_quantiles", f"{where}: exact quantiles "
                             f"{dict(cell.quantiles)} decrease with the probability"))
        return p

    def merge(self, spec: IndicatorSpec, results: Mapping[str, Sequence[Cell]], year: int,
              pool: Pool) -> list[Figure]:
        return merge_by_stratum(spec, results, year, pool, DistributionTally)

    def measure_text(self, spec: IndicatorSpec, unit_text: str) -> str:
        q = round((spec.quantile or 0.5) * 100)
        return f"{'Median' if q == 50 else f'{q}th percentile'} ({unit_text})"


def run_edges_of_ranks(runs: Sequence[BinRun], bins: Bins, low: int, high: int
                       ) -> tuple[float, float]:
    """The lower edge of the run holding rank ``low`` and the upper edge of the one holding
    rank ``high`` (1-based; ∞ for the open bin)."""
    lo = hi = math.nan
    seen = 0
    for first, last, count in runs:
        if seen < low <= seen + count:
            lo = edge(bins, first)
        if seen < high <= seen + count:
            hi = math.inf if last >= bins.count else edge(bins, last + 1)
        seen += count
    return lo, hi


def exact_allowed(n: int, prob: float, threshold: int) -> bool:
    """Whether the exact type-7 ``prob``-quantile of ``n`` values may leave the node: at
    least ``threshold`` values lie at or below its lower order statistic x₍⌊h⌋₎ and at
    least ``threshold`` at or above its upper one x₍⌈h⌉₎, h = (n − 1)·prob + 1."""
    h = (n - 1) * prob + 1
    return n > 0 and math.floor(h) >= threshold and n - math.ceil(h) + 1 >= threshold


def bin_label(spec: IndicatorSpec, index: int) -> str:
    assert spec.bins is not None
    b = spec.bins
    lo = b.start + index * b.width
    return f"bin {index} [{lo:g}, ∞)" if index >= b.count else \
        f"bin {index} [{lo:g}, {lo + b.width:g})"


DISTRIBUTION = Distribution()
