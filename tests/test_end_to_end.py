"""End to end: six nodes → real hub over HTTP → merge, checked against the pooled raw data.

Synthetic data for the six countries is split across six node flows (Prefect, embedded
test server) that sign and POST to a hub running as its own process on loopback. The hub's
merged Nordic figures must equal the same indicators computed directly on the Nordic rows
pooled into one file. The nodes run at the smallest threshold the federation allows (3), so
disclosure control is live: every released share cell and every released histogram run
must equal the raw count it stands for, and a figure is exact wherever no country withheld a
cell. Quantiles (Hyndman–Fan type 7) are checked against the raw values: each country's
median and P90 exactly, each pooled one to within a bin, and every interval against scipy's
exact binomial order-statistic interval on the same values, widened to its bins.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from scipy.stats import quantile_test

from emsbench.demo import COUNTRIES, free_port, start_hub, stop_process, write_hub_config
from emsbench.engine import compute
from emsbench.kinds import Context
from emsbench.kinds.base import population_filter, strata_select
from emsbench.kinds.distribution import exact_allowed, quantile_key
from emsbench.reference import population_by
from emsbench.sandbox import open_sandbox
from emsbench.specs import (
    Bins,
    IndicatorSpec,
    SpecError,
    default_spec_dir,
    load_specs,
    spec_grid,
)
from emsbench.wire import Cell, IndicatorResult
from hub.config import load_hub_config
from hub.ledger import PeriodView
from hub.merge import NORDIC, NORDIC_COUNTRIES, Figure, merge
from hub.signing import load_or_create_hub_key, public_key_path
from hub.source import load_period
from hub.trust_file import write_registry
from node.config import NodeConfig, write_node_config
from node.flow import run_node
from node.ingest import ingest
from node.keys import keygen
from node.synth.generator import generate

YEAR = 2025
ROWS = {"NO": 20_000, "SE": 25_000, "DK": 15_000, "FI": 15_000, "IS": 4_000, "US": 40_000}
K = 3  # the smallest disclosure threshold a federation may set


class Federation:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.hub_config = write_hub_config(root / "hub", self.port)
        with self.hub_config.open("a", encoding="utf-8") as fh:
            fh.write(f"\n[policy]\nmin_disclosure_threshold = {K}\n")
        self.hub_key = public_key_path(root / "hub" / "hub-key.pem")
        load_or_create_hub_key(root / "hub" / "hub-key.pem")
        self.data: dict[str, Path] = {}
        self.configs: dict[str, Path] = {}

    def node_config(self, country: str, threshold: int = K, specs: Path | None = None,
                    name: str = "node.toml") -> Path:
        d = self.root / country
        cfg = NodeConfig(review=False, country=country, year=YEAR, data=self.data[country],
                         key=d / f"{country}.pem", outbox=d / "outbox",
                         hub_url=f"http://127.0.0.1:{self.port}", hub_key=self.hub_key,
                         disclosure_threshold=threshold, specs=specs)
        path = d / name
        write_node_config(path, cfg)
        return path

    def view(self) -> PeriodView:
        """The standing submissions, read through the running hub and re-verified."""
        return load_period(load_hub_config(self.hub_config), YEAR)[0]

    def records(self, country: str) -> int:
        return sum(s.record.country == country for s in self.view().standing) + sum(
            n.country == country for n in self.view().set_aside)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
               ) -> Iterator[Federation]:
    fed = Federation(tmp_path_factory.mktemp("federation"))
    keys = {}
    for i, country in enumerate(COUNTRIES):
        d = fed.root / country
        d.mkdir()
        fed.data[country] = d / f"{country}.parquet"
        generate(country, YEAR, fed.data[country], rows=ROWS[country], seed=100 + i)
        keys[country] = [keygen(d / f"{country}.pem")[1]]
        fed.configs[country] = fed.node_config(country)
    write_registry(fed.root / "hub" / "trust.toml", keys)
    proc = start_hub(fed.hub_config, fed.port, fed.root / "hub" / "hub.log")
    try:
        for country in COUNTRIES:
            result = run_node(fed.configs[country])
            assert result.receipt is not None and result.receipt.status == "accepted"
        yield fed
    finally:
        stop_process(proc)


def _pooled_results(fed: Federation, countries: list[str], tmp: Path
                    ) -> list[IndicatorResult]:
    """The indicators computed on the rows of several countries as if they were one; rates
    divide by the countries' populations added (each node uses its shipped reference)."""
    pooled = tmp / "pooled.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(fed.data[c]) for c in countries]), pooled)
    persons: dict[tuple[str, str], int] = {}
    for country in countries:
        for key, n in population_by(country, YEAR).items():
            persons[key] = persons.get(key, 0) + n
    ctx = Context(None, YEAR, persons)
    con = open_sandbox(lambda c: ingest(c, pooled, YEAR) and None, readable=[pooled])
    try:
        return [compute(con, spec, ctx=ctx) for spec in load_specs()]
    finally:
        con.close()


def _figures(fed: Federation) -> list[Figure]:
    return merge(fed.view().submissions, load_specs(), YEAR)


def _raw_runs_hold(runs: list[tuple[int, int, int]], raw: dict[int, int]) -> bool:
    """Released runs stand for exactly the raw counts of the bins they span, and cover them."""
    covered = {b for first, last, _ in runs for b in range(first, last + 1)}
    return (all(count == sum(raw.get(b, 0) for b in range(first, last + 1))
                for first, last, count in runs)
            and all(b in covered for b, n in raw.items() if n))


def band_width(bins: Bins, value: float) -> float:
    """The width of the band of the spec's lattice that ``value`` lies in (one bin wherever
    the lattice is the bins)."""
    b = min(max(int((value - bins.start) // bins.width), 0), bins.count)
    starts = bins.band_starts
    i = max(j for j, s in enumerate(starts) if s <= b)
    return (starts[i + 1] - starts[i]) * bins.width if i + 1 < len(starts) else math.inf


def _values(path: Path, specs: list[IndicatorSpec]) -> dict[str, dict[str, np.ndarray]]:
    """Per distribution spec and stratum label, the spec's value of every case, straight from
    the rows (the spec's population and measure; no bins, no disclosure control)."""
    con = open_sandbox(lambda c: ingest(c, path, YEAR) and None, readable=[path])
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        for spec in specs:
            assert spec.bins is not None
            rows = con.execute(f"SELECT {strata_select(spec)}CAST(({spec.measure}) AS DOUBLE) "
                               f"FROM missions WHERE {population_filter(spec)}").fetchall()
            found: dict[str, list[float]] = {}
            for *stratum, v in rows:
                if v is not None and v >= spec.bins.start:
                    label = ";".join(f"{k}={x}" for k, x in zip(spec.strata, stratum,
                                                                 strict=True))
                    found.setdefault(label, []).append(v)
            out[spec.id] = {k: np.array(v) for k, v in found.items()}
    finally:
        con.close()
    return out


def _check_released(fed: Federation, tmp: Path) -> int:
    """Every released count of every country equals its raw count; small ones withheld."""
    checked = 0
    for sub in fed.view().submissions:
        direct = {r.spec_id: r for r in _pooled_results(fed, [sub.country], tmp)}
        for result in sub.indicators:
            raw = {tuple(sorted(c.stratum.items())): c for c in direct[result.spec_id].cells}
            for cell in result.cells:
                truth = raw.get(tuple(sorted(cell.stratum.items())))
                if truth is None:  # a stratum without cases: sent as an empty cell
                    assert not cell.suppressed and cell.bins in ([], None)
                    assert (cell.numerator or 0) == (cell.denominator or 0) == 0
                    checked += 1
                    continue
                if cell.bins is not None:
                    assert _raw_runs_hold(cell.bins, {f: n for f, _, n in truth.bins or []})
                    assert all(n >= K for _, _, n in cell.bins)
                    # the exact quantiles go out with every released cell that has cases,
                    # each with at least K cases on either side
                    n = sum(c for *_, c in cell.bins)
                    sent = {k: v for k, v in (truth.quantiles or {}).items()
                            if exact_allowed(n, float(k), K)}
                    assert cell.quantiles == (sent or None)
                elif not cell.suppressed:
                    assert (cell.numerator, cell.denominator) == (truth.numerator,
                                                                  truth.denominator)
                elif truth.bins is not None:  # a histogram is withheld with its quantiles
                    assert cell.quantiles is None and sum(n for *_, n in truth.bins) > 0
                else:  # withheld only when a count (or the complement) is small
                    assert truth.denominator is not None and truth.numerator is not None
                    # small, or withheld by secondary suppression (a margin another
                    # indicator carries would give it away: tests/node/test_margins.py)
                    assert truth.denominator >= truth.numerator
                checked += 1
    return checked


def _check_group(figures: list[Figure], country: str, direct: list[IndicatorResult]
                 ) -> tuple[int, int, list[tuple[str, str]]]:
    """Figures of a country (or the Nordic pool) against the raw computation: exact where
    nothing was withheld; distributions: same case count, quantile within the coarsening."""
    specs = {s.id: s for s in load_specs()}
    exact = total_cells = 0
    withheld: list[tuple[str, str]] = []
    for result in direct:
        spec = specs[result.spec_id]
        if spec.type == "ratio":
            continue  # O/E against the pooled rows: tests/emsbench/test_ratio.py
        for cell in result.cells:
            stratum = ";".join(f"{k}={cell.stratum[k]}" for k in spec.strata)
            [fig] = [f for f in figures if (f.indicator_id, f.country, f.stratum)
                     == (spec.id, country, stratum)]
            total_cells += 1
            if fig.suppressed:
                withheld.append((spec.id, stratum))
            if spec.type in ("share", "rate"):
                assert cell.numerator is not None and cell.denominator is not None
                if fig.suppressed:  # what was released is part of the truth
                    assert (fig.denominator or 0) <= cell.denominator
                    continue
                assert (fig.numerator, fig.denominator) == (cell.numerator, cell.denominator), \
                    (spec.id, country, stratum)
            else:
                assert spec.bins is not None and spec.quantile is not None
                total = sum(c for _, _, c in cell.bins or [])
                if fig.suppressed:
                    assert (fig.denominator or 0) < total
                    continue
                assert fig.denominator == total
                # ``cell`` was computed on the raw rows: its quantiles are the exact ones
                assert cell.quantiles is not None and fig.value is not None
                truth = cell.quantiles[quantile_key(spec.quantile)]
                if fig.method == "exact":  # a country's own value, from its node
                    assert fig.value == truth, (spec.id, country, stratum)
                else:  # a pool's, read off the pooled histogram: within its band
                    assert abs(fig.value - truth) <= band_width(spec.bins, truth) + 1e-9, \
                        (spec.id, country, stratum)
            exact += 1
    return exact, total_cells, withheld


def test_merged_nordic_figures_equal_the_pooled_computation(federation: Federation,
                                                             tmp_path: Path) -> None:
    figures = _figures(federation)
    nordic = [c for c in COUNTRIES if c in NORDIC_COUNTRIES]
    exact, cells, withheld = _check_group(figures, NORDIC,
                                          _pooled_results(federation, nordic, tmp_path))
    assert cells >= len(load_specs()) + 2 * 5  # every indicator; response times by stratum
    # Inexact only where a country withheld a cell (Iceland's small arrest counts at k = 3).
    assert exact >= 0.85 * cells, withheld


def test_every_released_count_equals_its_raw_count(federation: Federation,
                                                  tmp_path: Path) -> None:
    assert _check_released(federation, tmp_path) > 6 * len(COUNTRIES)


def test_us_figures_equal_the_us_computation_and_are_not_pooled(federation: Federation,
                                                               tmp_path: Path) -> None:
    figures = _figures(federation)
    exact, cells, withheld = _check_group(figures, "US",
                                          _pooled_results(federation, ["US"], tmp_path))
    assert exact == cells > 6, withheld
    bcpr = {f.country: f for f in figures if f.indicator_id == "BCPR"}
    nordic_den = sum(bcpr[c].denominator or 0 for c in NORDIC_COUNTRIES)
    assert bcpr[NORDIC].denominator == nordic_den != nordic_den + (bcpr["US"].denominator or 0)


def test_independent_check_of_bystander_cpr_and_median_response(federation: Federation) -> None:
    """Recompute two figures with Polars straight from the raw files, without our SQL."""
    nordic = pl.concat([pl.read_parquet(federation.data[c]) for c in NORDIC_COUNTRIES])
    # only required fields reject a row (an impossible age is set to NULL, the row stays)
    valid = nordic.filter(pl.col("urgency_level").is_in(["U1", "U2", "U3"])
                          & (pl.col("call_received").dt.year() == YEAR))
    arrests = valid.filter(pl.col("ca_arrest").fill_null(False)
                           & pl.col("ca_resus_attempted").fill_null(False)
                           & (pl.col("ca_witnessed_by").fill_null("unknown") != "ems"))
    bcpr = next(f for f in _figures(federation)
                if (f.indicator_id, f.country) == ("BCPR", NORDIC))
    assert bcpr.denominator == arrests.height > 100
    assert bcpr.numerator == arrests["ca_bystander_cpr"].fill_null(False).sum()

    minutes = (valid.filter(pl.col("service_type").is_in(["emergency", "intercept",
                                                          "mutual_aid"])
                            & ~pl.col("cancelled").fill_null(False)
                            & (pl.col("urgency_level") == "U1")
                            & (pl.col("urbanicity") == "urban")
                            & (pl.col("arrived_scene") >= pl.col("call_received")))
               .select((pl.col("arrived_scene") - pl.col("call_received"))
                       .dt.total_seconds() / 60.0)
               .to_series())
    med = next(f for f in _figures(federation)
               if (f.indicator_id, f.country, f.stratum)
               == ("RESP-MED", NORDIC, "urgency_level=U1;urbanicity=urban"))
    assert med.denominator == minutes.len()
    # the pooled median, read off 15-s bins, is within one bin of Polars' median of the rows
    assert med.value is not None and abs(med.value - float(minutes.median())) <= 0.25  # type: ignore[arg-type]


def test_submission_size_is_bounded_by_the_specs_not_the_rows(federation: Federation) -> None:
    specs = {s.id: s for s in load_specs()}
    for sub in federation.view().submissions:
        for result in sub.indicators:
            spec = specs[result.spec_id]
            assert len(result.cells) == len(spec_grid(spec))  # the declared grid, no more
            for cell in result.cells:
                assert len(cell.bins or []) <= (spec.bins.n_bins if spec.bins else 0)


LEAK = "/tmp/emsbench-leak"
ATTEMPTS = {
    # a file read inside an expression: the spec language refuses the subquery (the locked
    # sandbox would refuse the read too: tests/emsbench/test_sandbox.py)
    "read_csv": ("population", "(SELECT count(*) FROM read_csv('{data}')) > 0",
                 r"BCPR.yaml: population `.*`: a subquery is not allowed"),
    # statements smuggled after an expression: refused before anything runs
    "copy": ("numerator", f"true; COPY missions TO '{LEAK}.csv'",
             r"BCPR.yaml: numerator `.*`: must be one SQL expression"),
    "attach": ("numerator", f"true; ATTACH '{LEAK}.duckdb' AS leak",
               r"BCPR.yaml: numerator `.*`: must be one SQL expression"),
    "install": ("population", "true; INSTALL httpfs",
                r"BCPR.yaml: population `.*`: must be one SQL expression"),
}


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_a_spec_that_reaches_outside_fails_and_nothing_is_sent(
        federation: Federation, tmp_path: Path, attempt: str) -> None:
    field, sql, message = ATTEMPTS[attempt]
    specs = tmp_path / "specs"
    specs.mkdir()
    for path in default_spec_dir().glob("*.yaml"):
        (specs / path.name).write_bytes(path.read_bytes())
    evil = yaml.safe_load((specs / "BCPR.yaml").read_text(encoding="utf-8"))
    evil[field] = sql.format(data=federation.data["NO"])
    (specs / "BCPR.yaml").write_text(yaml.safe_dump(evil), encoding="utf-8")
    before = len(federation.view().standing)
    outbox = federation.root / "NO" / "outbox"
    sent_before = sorted(outbox.iterdir())
    config = federation.node_config("NO", specs=specs, name="evil.toml")
    # Refused twice over: the spec check dry-runs every expression inside a sandbox, and
    # the computation itself runs in one (tests/emsbench/test_sandbox.py).
    with pytest.raises(SpecError, match=message):
        run_node(config)
    assert sorted(outbox.iterdir()) == sent_before
    assert len(federation.view().standing) == before
    assert not any(Path(f"{LEAK}{ext}").exists() for ext in (".csv", ".duckdb"))


def _widened(bins: Bins, values: np.ndarray, q: float) -> tuple[float, float]:
    """scipy's exact binomial order-statistic interval for the q-quantile of ``values``,
    widened to the lower edge of the bin holding its low end and the upper edge of the bin
    holding its high end (a bound the sample is too small for: the bins' start, or the top,
    as the open bin is shown)."""
    ci = quantile_test(values, p=q).confidence_interval()
    top = bins.start + bins.count * bins.width

    def index(v: float) -> int:
        return min(math.floor((v - bins.start) / bins.width), bins.count)

    low = bins.start if math.isnan(ci.low) else bins.start + index(ci.low) * bins.width
    high = top if math.isnan(ci.high) or index(ci.high) >= bins.count else \
        bins.start + (index(ci.high) + 1) * bins.width
    return low, high


def _straddles(runs: list[tuple[int, int, int]], value: float, bins: Bins) -> bool:
    """Whether a released run spans the bin edge at ``value`` (then the hub can only widen
    an interval end to that run's edge)."""
    e = round((value - bins.start) / bins.width)
    return any(first < e <= last for first, last, _ in runs)


def test_quantiles_are_exact_per_country_and_pooled_ones_and_intervals_match_the_rows(
        federation: Federation) -> None:
    """Against the raw values of each country and of the Nordic rows pooled: every country's
    median and P90 is exactly the type-7 value (numpy's default); every pooled one is within
    one bin (15 s for response times); every interval contains scipy's exact binomial
    order-statistic interval widened to its bins, and equals it wherever no released run
    spans the bin edges in question (elsewhere the runs' edges are as close as the released
    counts allow)."""
    specs = [s for s in load_specs() if s.type == "distribution"]
    by_id = {s.id: s for s in specs}
    values = {c: _values(federation.data[c], specs) for c in COUNTRIES}
    cells: dict[tuple[str, str, str], Cell] = {}
    for sub in federation.view().submissions:
        for result in sub.indicators:
            spec = by_id.get(result.spec_id)
            for cell in result.cells if spec is not None else []:
                label = ";".join(f"{k}={cell.stratum[k]}" for k in spec.strata)  # type: ignore[union-attr]
                cells[(sub.country, result.spec_id, label)] = cell
    exact_gap = pooled_gap = 0.0
    exact_n = pooled_n = intervals = ends_at_bins = ends_resolved = 0
    for f in _figures(federation):
        spec = by_id.get(f.indicator_id)
        if spec is None or f.value is None:
            continue
        assert spec.bins is not None and spec.quantile is not None
        b, q = spec.bins, spec.quantile
        members = [f.country] if f.country != NORDIC else [
            c for c in NORDIC_COUNTRIES if c not in f.omitted]
        raw = np.concatenate([values[c][spec.id].get(f.stratum, np.array([]))
                              for c in members])
        assert len(raw) == f.denominator, (spec.id, f.country, f.stratum)
        truth = float(np.quantile(raw, q))  # numpy's default is type 7
        if f.country != NORDIC:
            mine = cells[(f.country, spec.id, f.stratum)]
            assert f.method == "exact" and mine.quantiles is not None
            assert f.value == pytest.approx(truth, abs=1e-9), (spec.id, f.country, f.stratum)
            assert mine.quantiles["0.5"] == pytest.approx(float(np.median(raw)), abs=1e-9)
            exact_gap, exact_n = max(exact_gap, abs(f.value - truth)), exact_n + 1
        else:
            assert f.method == "histogram"
            gap = abs(f.value - truth)
            assert gap <= band_width(b, truth) + 1e-9, (spec.id, f.stratum, f.value, truth)
            if b.width == 0.25:  # 15-s bins: the response, call-processing and scene times
                assert gap <= b.width + 1e-9, (spec.id, f.stratum, f.value, truth)
            pooled_gap, pooled_n = max(pooled_gap, gap / b.width), pooled_n + 1
        low, high = _widened(b, raw, q)
        assert f.ci_low is not None and f.ci_high is not None
        assert f.ci_low <= low + 1e-9 and f.ci_high >= high - 1e-9, (spec.id, f.country,
                                                                    f.stratum)
        assert f.ci_high - f.ci_low >= b.width - 1e-9  # never narrower than a bin
        runs = [r for c in members for r in cells[(c, spec.id, f.stratum)].bins or []]
        intervals += 1
        resolved = [(got, want) for got, want in ((f.ci_low, low), (f.ci_high, high))
                    if not _straddles(runs, want, b)]
        for got, want in resolved:
            assert got == pytest.approx(want, abs=1e-9), (spec.id, f.country, f.stratum)
        ends_resolved += len(resolved)
        ends_at_bins += sum(abs(g - w) < 1e-9 for g, w in ((f.ci_low, low), (f.ci_high, high)))
    print(f"\nquantiles: {exact_n} country values, max gap to numpy type 7 {exact_gap:.1e} min;"
          f" {pooled_n} pooled values, max gap {pooled_gap:.2f} bins; {intervals} intervals, "
          f"{ends_at_bins} of {2 * intervals} ends equal to scipy's widened to its bin "
          f"({ends_resolved} not spanned by a released run, all equal)")
    assert exact_n >= 6 * 8 and pooled_n >= 8 and intervals >= exact_n + pooled_n


def test_disclosure_threshold_holds_in_real_submissions(federation: Federation) -> None:
    """A rerun at threshold 5 is Iceland's revision 2 and replaces its figures; no count from
    1 to 4 leaves, and the hub keeps both revisions."""
    config = federation.node_config("IS", threshold=5, name="k5.toml")
    result = run_node(config)
    sub = result.submission
    assert sub.revision == 2 and result.receipt is not None and result.receipt.revision == 2
    counts: list[int | None] = [sub.data_quality.rows_read, sub.data_quality.rows_accepted]
    for r in sub.indicators:
        for c in r.cells:
            counts += [c.numerator, c.denominator] + [n for _, _, n in c.bins or []]
            if c.numerator is not None and c.denominator is not None:
                counts.append(c.denominator - c.numerator)
    counts += list(sub.data_quality.rejected_by_reason.values())
    assert not [n for n in counts if n is not None and 0 < n < 5]
    assert any(c.suppressed for r in sub.indicators for c in r.cells)
    view = federation.view()
    [iceland] = [s for s in view.standing if s.record.country == "IS"]
    assert iceland.record.submission_id == sub.submission_id
    client = load_hub_config(federation.hub_config)
    from hub.source import open_source

    source = open_source(client)
    assert sorted(r.revision for r in source.records(YEAR) if r.country == "IS") == [1, 2]
