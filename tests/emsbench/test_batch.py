"""The catalogue in one scan (emsbench.batch) gives exactly what each spec's own query
gives, with exact quantiles bit for bit, in one query that shares what specs share."""

from __future__ import annotations

import random
import re
from pathlib import Path

import duckdb
import pytest

from emsbench.batch import catalogue_query, compute_catalogue, exact_quantiles
from emsbench.kinds import Context, kind_of
from emsbench.reference import population_by
from emsbench.sandbox import SandboxError, open_sandbox, query
from emsbench.specs import IndicatorSpec, load_specs
from node.ingest import open_missions
from node.synth.generator import generate

YEAR = 2025


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The node's own sandbox over 40,000 synthetic US rows (bad rows included)."""
    path = tmp_path_factory.mktemp("data") / "US.parquet"
    generate("US", YEAR, path, rows=40_000, seed=11)
    con, _ = open_missions(path, YEAR, tmp_path_factory.mktemp("work"))
    yield con
    con.close()


def _reference(con: duckdb.DuckDBPyConnection, spec: IndicatorSpec, ctx: Context) -> list:  # type: ignore[type-arg]
    """The spec's own plain query (quantile_cont over every value), as cells."""
    kind = kind_of(spec)
    cells = kind.cells(spec, query(con, kind.aggregate_sql(spec, "missions"), spec.id), ctx)
    return sorted((c.model_dump() for c in cells), key=str)


def test_one_scan_equals_every_specs_own_query(sandbox: duckdb.DuckDBPyConnection) -> None:
    specs = load_specs()
    ctx = Context("US", YEAR, population_by("US", YEAR))
    results = compute_catalogue(sandbox, specs, ctx=ctx)
    compared = 0
    for spec, result in zip(specs, results, strict=True):
        got = sorted((c.model_dump() for c in result.cells), key=str)
        assert got == _reference(sandbox, spec, ctx), spec.id
        compared += len(got)
    assert compared > 60  # every stratum of 31 specs, not a handful of empty cells
    assert any(r.type == "distribution" and r.cells and r.cells[0].quantiles for r in results)


def test_exact_quantiles_are_quantile_cont_bit_for_bit() -> None:
    con = duckdb.connect()
    rng = random.Random(5)
    for _ in range(400):
        n = rng.randint(1, 40)
        # Whole seconds in minutes (ties), arbitrary doubles and negatives.
        values = [rng.choice([rng.randint(-60, 4000) / 60.0, rng.random() * 1e3,
                              -rng.random()]) for _ in range(n)]
        probs = [0.5, 0.9, round(rng.random(), 3)]
        counts: dict[float, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        ((want,),) = con.execute("SELECT quantile_cont(v, $p) FROM (SELECT unnest($v) AS v)",
                                 {"p": probs, "v": values}).fetchall()
        assert exact_quantiles(con, counts, probs) == want, (values, probs)


def test_the_catalogue_is_one_query_that_shares_populations_and_distributions() -> None:
    specs = load_specs()
    q = catalogue_query(specs)
    assert q.sql.count("FROM missions") == 1
    by_id = {s.id: s for s in specs}
    # The median and the 90th centile of one distribution count its values once.
    assert q.partials["RESP-MED"] == q.partials["RESP-P90"]
    assert q.sql.count("histogram(") == len({kind_of(s).partials(s)[0] for s in specs
                                             if s.type == "distribution"})
    # Each distinct population is computed once per row, however many specs use it.
    populations = {kind_of(s).population(s) for s in specs}
    assert len(populations) < len(specs)
    assert len(re.findall(r" AS _t\d+", q.sql)) == len(
        {t for s in specs for p in kind_of(s).partials(s) for t in p.where})
    assert by_id["SURV-OE"].adjust_for  # the case mix is a key of its own specs only


def test_a_rare_specs_strata_do_not_multiply_the_groups(
        sandbox: duckdb.DuckDBPyConnection) -> None:
    """SURV-OE's case mix (age band × sex × …) is NULL outside cardiac arrests, so the
    groups are about the sum, not the product, of the specs' strata."""
    specs = load_specs()
    q = catalogue_query(specs)
    groups = len(sandbox.execute(q.sql).fetchall())
    per_spec = sum(len(sandbox.execute(
        f"SELECT DISTINCT {', '.join(kind_of(s).keys(s)) or '1'} FROM missions "
        f"WHERE {kind_of(s).population(s)}").fetchall()) for s in specs)
    assert groups <= per_spec


def test_a_spec_outside_the_language_is_refused_although_the_input_is_readable(
        tmp_path: Path, write_missions) -> None:  # type: ignore[no-untyped-def]
    """The node's sandbox reads its input (``missions`` is a view over it), so the engine
    checks every expression again: a spec built without loading cannot reach the file."""
    from tests.node.test_ingest import GOOD

    data = write_missions([GOOD, {**GOOD, "mission_id": "X2", "urgency_level": "U9"}])
    con, _ = open_missions(data, YEAR, tmp_path / "work")
    base = load_specs(only=["BCPR"])[0].model_dump()
    base["population"] = f"(SELECT count(*) FROM read_parquet('{data}')) > 1"
    spec = IndicatorSpec.model_validate(base)
    with pytest.raises(SandboxError, match="not in the spec language"):
        compute_catalogue(con, [spec])


def test_the_sandbox_reads_its_input_and_nothing_beside_it(tmp_path: Path,
                                                          write_missions) -> None:  # type: ignore[no-untyped-def]
    from tests.node.test_ingest import GOOD

    data = write_missions([GOOD])
    key = data.parent / "node.key"
    key.write_text("secret\n", encoding="utf-8")
    con, _ = open_missions(data, YEAR, tmp_path / "work")
    assert query(con, "SELECT count(*) FROM missions", "probe") == [(1,)]
    for sql in (f"SELECT * FROM read_csv('{key}')", "SELECT * FROM read_csv('/etc/passwd')",
                f"COPY (SELECT 1) TO '{data.parent / 'out.csv'}'"):
        with pytest.raises(SandboxError, match="refused by the sandbox"):
            query(con, sql, "probe")
    assert not (data.parent / "out.csv").exists()


def test_nothing_is_copied_into_the_working_folder(tmp_path: Path) -> None:
    path = tmp_path / "US.parquet"
    generate("US", YEAR, path, rows=20_000, seed=3)
    work = tmp_path / "work"
    con, report = open_missions(path, YEAR, work)
    assert report.rows_accepted > 19_000
    assert con.execute("SELECT count(*) FROM missions").fetchall() == [(report.rows_accepted,)]
    written = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
    assert written < path.stat().st_size / 100
    con.close()


def test_an_empty_sandbox_gives_each_spec_its_empty_shape() -> None:
    specs = load_specs()
    con = open_sandbox()
    ctx = Context("US", YEAR, population_by("US", YEAR))
    results = compute_catalogue(con, specs, ctx=ctx)
    for spec, result in zip(specs, results, strict=True):
        assert sorted((c.model_dump() for c in result.cells), key=str) == \
            _reference(con, spec, ctx), spec.id
