"""End to end: six nodes → real hub over HTTP → merge, checked against the pooled raw data.

Synthetic data for the six countries is split across six node flows (Prefect, embedded
test server) that sign and POST to a hub running as its own process on loopback. The hub's
merged Nordic figures must equal the same indicators computed directly on the Nordic rows
pooled into one file: exactly for counts and shares, and for distributions exactly the
same histogram (hence the same quantile). The disclosure threshold is 1 here so that
nothing is coarsened; disclosure control has its own tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from emsbench.demo import COUNTRIES, free_port, start_hub, stop_process, write_hub_config
from emsbench.engine import compute
from emsbench.sandbox import open_sandbox
from emsbench.specs import SpecError, default_spec_dir, load_specs
from emsbench.wire import IndicatorResult
from hub.merge import NORDIC, NORDIC_COUNTRIES, Figure, merge
from hub.stats import histogram_quantile, spread_runs
from hub.store import Store
from hub.trust import write_registry
from node.config import NodeConfig, write_node_config
from node.flow import run_node
from node.ingest import ingest
from node.keys import keygen
from node.synth.generator import generate

YEAR = 2025
ROWS = {"NO": 20_000, "SE": 25_000, "DK": 15_000, "FI": 15_000, "IS": 4_000, "US": 40_000}


class Federation:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.hub_config = write_hub_config(root / "hub", self.port)
        self.store = Store(root / "hub" / "hub.duckdb")
        self.data: dict[str, Path] = {}
        self.configs: dict[str, Path] = {}

    def node_config(self, country: str, threshold: int = 1, specs: Path | None = None,
                    name: str = "node.toml") -> Path:
        d = self.root / country
        cfg = NodeConfig(country=country, year=YEAR, data=self.data[country],
                         key=d / f"{country}.pem", outbox=d / "outbox",
                         hub_url=f"http://127.0.0.1:{self.port}",
                         disclosure_threshold=threshold, specs=specs)
        path = d / name
        write_node_config(path, cfg)
        return path


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
            assert result.receipt is not None and result.receipt["status"] == "accepted"
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
    return merge(fed.store.latest_submissions(YEAR), load_specs(), YEAR)


def _check_group(figures: list[Figure], country: str, direct: list[IndicatorResult]) -> int:
    specs = {s.id: s for s in load_specs()}
    checked = 0
    for result in direct:
        spec = specs[result.spec_id]
        for cell in result.cells:
            stratum = ";".join(f"{k}={cell.stratum[k]}" for k in spec.strata)
            [fig] = [f for f in figures if (f.indicator_id, f.country, f.stratum)
                     == (spec.id, country, stratum)]
            if spec.type == "share":
                assert (fig.numerator, fig.denominator) == (cell.numerator, cell.denominator), \
                    (spec.id, country, stratum)
            else:
                assert spec.bins is not None and spec.quantile is not None
                counts = spread_runs(cell.bins or [], spec.bins.n_bins)
                assert fig.denominator == sum(c for _, _, c in cell.bins or [])
                assert fig.value == histogram_quantile(counts, spec.bins.start,
                                                       spec.bins.width, spec.quantile)
            assert not fig.suppressed
            checked += 1
    return checked


def test_merged_nordic_figures_equal_the_pooled_computation(federation: Federation,
                                                             tmp_path: Path) -> None:
    figures = _figures(federation)
    nordic = [federation.data[c] for c in COUNTRIES if c in NORDIC_COUNTRIES]
    checked = _check_group(figures, NORDIC, _pooled_results(nordic, tmp_path))
    assert checked >= 6 + 2 * 5  # six indicators; response times in at least 5 strata


def test_us_figures_equal_the_us_computation_and_are_not_pooled(federation: Federation,
                                                               tmp_path: Path) -> None:
    figures = _figures(federation)
    assert _check_group(figures, "US", _pooled_results([federation.data["US"]], tmp_path)) > 6
    bcpr = {f.country: f for f in figures if f.indicator_id == "BCPR"}
    nordic_den = sum(bcpr[c].denominator or 0 for c in NORDIC_COUNTRIES)
    assert bcpr[NORDIC].denominator == nordic_den != nordic_den + (bcpr["US"].denominator or 0)


def test_independent_check_of_bystander_cpr_and_median_response(federation: Federation) -> None:
    """Recompute two figures with Polars straight from the raw files, without our SQL."""
    nordic = pl.concat([pl.read_parquet(federation.data[c]) for c in NORDIC_COUNTRIES])
    valid = nordic.filter(pl.col("urgency_level").is_in(["U1", "U2", "U3"])
                          & (pl.col("patient_age").is_null() | (pl.col("patient_age") <= 120))
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
    for sub in federation.store.latest_submissions(YEAR):
        for result in sub.indicators:
            spec = specs[result.spec_id]
            assert len(result.cells) <= 4 ** len(spec.strata)  # values + 'unknown' per stratum
            for cell in result.cells:
                assert len(cell.bins or []) <= (spec.bins.n_bins if spec.bins else 0)


LEAK = "/tmp/emsbench-leak"
ATTEMPTS = {
    # a file read inside an expression: the dry run in the sandbox refuses it
    "read_csv": ("population", "(SELECT count(*) FROM read_csv('{data}')) > 0",
                 "BCPR.yaml: population is refused by the sandbox"),
    # statements smuggled after an expression: refused before anything runs
    "copy": ("numerator", f"true; COPY missions TO '{LEAK}.csv'",
             "BCPR.yaml: numerator must be one SQL expression"),
    "attach": ("numerator", f"true; ATTACH '{LEAK}.duckdb' AS leak",
               "BCPR.yaml: numerator must be one SQL expression"),
    "install": ("population", "true; INSTALL httpfs",
                "BCPR.yaml: population must be one SQL expression"),
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
    before = federation.store.count_submissions()
    outbox = federation.root / "NO" / "outbox"
    sent_before = sorted(outbox.iterdir())
    config = federation.node_config("NO", specs=specs, name="evil.toml")
    # Refused twice over: the spec check dry-runs every expression inside a sandbox, and
    # the computation itself runs in one (tests/emsbench/test_sandbox.py).
    with pytest.raises(SpecError, match=message):
        run_node(config)
    assert sorted(outbox.iterdir()) == sent_before
    assert federation.store.count_submissions() == before
    assert not any(Path(f"{LEAK}{ext}").exists() for ext in (".csv", ".duckdb"))


def test_disclosure_threshold_holds_in_real_submissions(federation: Federation) -> None:
    """A rerun at threshold 5 replaces Iceland's figures; no count from 1 to 4 leaves."""
    config = federation.node_config("IS", threshold=5, name="k5.toml")
    result = run_node(config)
    counts: list[int | None] = []
    for r in result.submission.indicators:
        for c in r.cells:
            counts += [c.numerator, c.denominator] + [n for _, _, n in c.bins or []]
    counts += list(result.submission.data_quality.rejected_by_reason.values())
    assert not [n for n in counts if n is not None and 0 < n < 5]
    assert any(c.suppressed for r in result.submission.indicators for c in r.cells)
    latest = {s.country: s for s in federation.store.latest_submissions(YEAR)}
    assert latest["IS"].submission_id == result.submission.submission_id
    with duckdb.connect() as con:  # the hub kept both of Iceland's submissions
        con.execute(f"ATTACH '{federation.store.path}' AS hub (READ_ONLY)")
        n = con.execute("SELECT count(*) FROM hub.submissions WHERE country = 'IS'").fetchone()
    assert n == (2,)
