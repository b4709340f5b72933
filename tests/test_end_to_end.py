"""End to end: six nodes → real hub over HTTP → merge, checked against the pooled raw data.

Synthetic data for the six countries is split across six node flows (Prefect, embedded
test server) that sign and POST to a hub running as its own process on loopback. The hub's
merged Nordic figures must equal the same indicators computed directly on the Nordic rows
pooled into one file. The nodes run at the smallest threshold the federation allows (3), so
disclosure control is live: every released share cell and every released histogram run
must equal the raw count it stands for, a figure is exact wherever no country withheld a
cell, and the quantiles of coarsened histograms stay within their bins.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from emsbench.demo import COUNTRIES, free_port, start_hub, stop_process, write_hub_config
from emsbench.engine import compute
from emsbench.sandbox import open_sandbox
from emsbench.specs import SpecError, default_spec_dir, load_specs
from emsbench.stats import histogram_quantile
from emsbench.wire import IndicatorResult
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


def _pooled_results(files: list[Path], tmp: Path) -> list[IndicatorResult]:
    """The indicators computed on the rows of several countries as if they were one."""
    pooled = tmp / "pooled.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(f) for f in files]), pooled)
    con = open_sandbox(lambda c: ingest(c, pooled, YEAR) and None)
    try:
        return [compute(con, spec) for spec in load_specs()]
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


def _check_released(fed: Federation, tmp: Path) -> int:
    """Every released count of every country equals its raw count; small ones withheld."""
    checked = 0
    for sub in fed.view().submissions:
        direct = {r.spec_id: r for r in _pooled_results([fed.data[sub.country]], tmp)}
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
                elif not cell.suppressed:
                    assert (cell.numerator, cell.denominator) == (truth.numerator,
                                                                  truth.denominator)
                else:  # withheld only when a count (or the complement) is small
                    assert truth.denominator is not None and truth.numerator is not None
                    small = [n for n in (truth.numerator, truth.denominator,
                                         truth.denominator - truth.numerator) if 0 < n < K]
                    assert small or (truth.bins is not None)
                checked += 1
    return checked


def _check_group(figures: list[Figure], country: str, direct: list[IndicatorResult]
                 ) -> tuple[int, int]:
    """Figures of a country (or the Nordic pool) against the raw computation: exact where
    nothing was withheld; distributions: same case count, quantile within the coarsening."""
    specs = {s.id: s for s in load_specs()}
    exact = total_cells = 0
    for result in direct:
        spec = specs[result.spec_id]
        for cell in result.cells:
            stratum = ";".join(f"{k}={cell.stratum[k]}" for k in spec.strata)
            [fig] = [f for f in figures if (f.indicator_id, f.country, f.stratum)
                     == (spec.id, country, stratum)]
            total_cells += 1
            if spec.type == "share":
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
                counts = [0.0] * spec.bins.n_bins
                for first, _, n in cell.bins or []:
                    counts[first] = n
                truth = histogram_quantile(counts, spec.bins.start, spec.bins.width,
                                           spec.quantile)
                assert fig.value is not None
                # Coarsened runs are spread evenly; with >= 200 cases the quantile sits in
                # well-filled bins, a few bins at most from the exact histogram quantile.
                if total >= 200:
                    assert abs(fig.value - truth) <= 4 * spec.bins.width, (spec.id, stratum)
            exact += 1
    return exact, total_cells


def test_merged_nordic_figures_equal_the_pooled_computation(federation: Federation,
                                                             tmp_path: Path) -> None:
    figures = _figures(federation)
    nordic = [federation.data[c] for c in COUNTRIES if c in NORDIC_COUNTRIES]
    exact, cells = _check_group(figures, NORDIC, _pooled_results(nordic, tmp_path))
    assert cells >= len(load_specs()) + 2 * 5  # every indicator; response times by stratum
    # Inexact only where a country withheld a cell (Iceland's small arrest counts at k = 3).
    assert exact >= 0.85 * cells


def test_every_released_count_equals_its_raw_count(federation: Federation,
                                                  tmp_path: Path) -> None:
    assert _check_released(federation, tmp_path) > 6 * len(COUNTRIES)


def test_us_figures_equal_the_us_computation_and_are_not_pooled(federation: Federation,
                                                               tmp_path: Path) -> None:
    figures = _figures(federation)
    exact, cells = _check_group(figures, "US", _pooled_results([federation.data["US"]], tmp_path))
    assert exact == cells > 6
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
    assert med.value is not None and abs(med.value - float(minutes.median())) <= 0.5  # type: ignore[arg-type]


def test_submission_size_is_bounded_by_the_specs_not_the_rows(federation: Federation) -> None:
    specs = {s.id: s for s in load_specs()}
    for sub in federation.view().submissions:
        for result in sub.indicators:
            spec = specs[result.spec_id]
            assert len(result.cells) <= 4 ** len(spec.strata)  # values + 'unknown' per stratum
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
