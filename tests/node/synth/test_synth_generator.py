"""Structure of the synthetic files: schema, determinism, streaming, ordering, bad rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from emsbench.crosswalk import codes_for
from emsbench.model import DERIVED, ENUMS, RANGES, input_schema
from node.synth.calibration import get_country
from node.synth.generator import BAD_AGE, BAD_ROW_SHARE, BLOCK_ROWS, generate
from node.synth.trends import country_for_year

Query = Callable[[str, str], tuple[Any, ...]]
TIMES = ["call_received", "call_answered", "unit_notified", "unit_en_route", "arrived_scene",
         "at_patient", "left_scene", "at_destination"]


def test_schema_has_model_names_types_and_order(synth_file: Callable[[str], Path]) -> None:
    model = input_schema()  # every model column but the ones the node derives
    written = pq.read_schema(synth_file("NO"))
    assert not set(DERIVED) & set(written.names)
    assert written.names == model.names
    assert written.types == model.types
    for name in model.names:  # NEMSIS ids travel with the file
        assert written.field(name).metadata == model.field(name).metadata


def test_same_inputs_give_identical_values_whatever_the_chunking(tmp_path: Path) -> None:
    rows = BLOCK_ROWS + 1_234
    a = generate("SE", 2024, tmp_path / "a.parquet", rows=rows, seed=7, chunk_rows=BLOCK_ROWS)
    b = generate("SE", 2024, tmp_path / "b.parquet", rows=rows, seed=7, chunk_rows=10**6)
    assert a == b == rows
    ta, tb = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert ta.equals(tb)
    assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups == 2
    assert pq.ParquetFile(tmp_path / "b.parquet").num_row_groups == 1


def test_different_seeds_give_different_values(tmp_path: Path) -> None:
    generate("DK", 2025, tmp_path / "1.parquet", rows=5_000, seed=1)
    generate("DK", 2025, tmp_path / "2.parquet", rows=5_000, seed=2)
    one, two = pl.read_parquet(tmp_path / "1.parquet"), pl.read_parquet(tmp_path / "2.parquet")
    assert one["mission_id"].equals(two["mission_id"])  # ids depend on position only
    for col in ("call_received", "arrived_scene", "patient_age", "urgency_native"):
        assert not one[col].equals(two[col]), col


def test_streams_in_chunks_with_exact_count_and_unique_ids(tmp_path: Path) -> None:
    rows = 2 * BLOCK_ROWS + 1
    calls: list[tuple[int, int]] = []
    out = tmp_path / "sub" / "fi.parquet"
    n = generate("FI", 2023, out, rows=rows, chunk_rows=BLOCK_ROWS,
                 progress=lambda done, total: calls.append((done, total)))
    assert n == rows
    assert calls == [(BLOCK_ROWS, rows), (2 * BLOCK_ROWS, rows), (rows, rows)]
    assert not (tmp_path / "sub" / "fi.parquet.part").exists()
    ids = pl.read_parquet(out, columns=["mission_id"])["mission_id"]
    assert ids.len() == rows and ids.n_unique() == rows
    assert ids[0] == "FI-2023-000000000" and ids[-1] == f"FI-2023-{rows - 1:09d}"
    assert pq.ParquetFile(out).num_row_groups == 3


def test_default_rows_is_yearly_volume_spread_over_the_year(tmp_path: Path) -> None:
    out = tmp_path / "is.parquet"
    # the year's volume: 2024 has fewer missions than the 2025 calibration (trends)
    assert generate("IS", 2024, out) == country_for_year("IS", 2024).volume
    assert country_for_year("IS", 2024).volume < get_country("IS").volume
    times = pl.read_parquet(out, columns=["call_received"])["call_received"]
    assert set(times.dt.year().unique()) == {2024}
    per_month = times.dt.month().value_counts()["count"].to_list()
    assert len(per_month) == 12 and min(per_month) > 0.06 * times.len()
    assert times.is_sorted()  # position in the file follows time


def test_zero_rows_still_has_the_schema(tmp_path: Path) -> None:
    assert generate("NO", 2025, tmp_path / "empty.parquet", rows=0) == 0
    assert pq.read_schema(tmp_path / "empty.parquet").names == input_schema().names


def test_unknown_country_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="valid: NO, SE, DK, FI, IS, US"):
        generate("XX", 2025, tmp_path / "x.parquet", rows=10)


@pytest.mark.parametrize("country", ["NO", "US"])
def test_times_strictly_ordered_and_null_when_not_reached(query: Query, country: str) -> None:
    steps = " AND ".join(f"{a} < {b}" for a, b in zip(TIMES[:5], TIMES[1:6], strict=True))
    disorder, cancelled_arrived, untransported_dest, missing = query(country, f"""
        SELECT count(*) FILTER (WHERE arrived_scene IS NOT NULL AND NOT ({steps}
                                AND at_patient < left_scene)
                                OR at_destination <= left_scene),
               count(*) FILTER (WHERE cancelled AND arrived_scene IS NOT NULL),
               count(*) FILTER (WHERE NOT transported AND at_destination IS NOT NULL),
               count(*) FILTER (WHERE transported AND at_destination IS NULL
                                OR NOT cancelled AND left_scene IS NULL)
        FROM {{m}}""")
    assert (disorder, cancelled_arrived, untransported_dest, missing) == (0, 0, 0, 0)
    before, = query(country, "SELECT count(*) FROM {m} WHERE call_received >= call_answered")
    assert before == 0
    ring_outside, ring_missing = query(country, """
        SELECT count(*) FILTER (WHERE call_ring_start < call_received
                                OR call_ring_start >= call_answered),
               count(*) FILTER (WHERE call_ring_start IS NULL) FROM {m}""")
    assert (ring_outside, ring_missing) == (0, 0)  # a ring start for every call


@pytest.mark.parametrize("country", ["NO", "US"])
def test_codes_come_from_the_model_and_crosswalk(synth_file: Callable[[str], Path],
                                                  country: str) -> None:
    c = get_country(country)
    xw = {x.native_code: x.common_level for x in codes_for(country, c.urgency_system)}
    df = pl.read_parquet(synth_file(country))
    for col, allowed in ENUMS.items():
        if col not in DERIVED:
            assert set(df[col].drop_nulls().unique()) <= set(allowed), col
    for col, (lo, hi) in RANGES.items():
        if col != "patient_age":  # which has deliberately bad rows (below)
            assert df[col].drop_nulls().is_between(lo, hi).all(), col
    pairs = df.filter(pl.col("urgency_level").is_not_null()).select(
        "urgency_native", "urgency_level").unique().rows()
    assert {n: lv for n, lv in pairs} == xw
    ca = df.filter(pl.col("ca_arrest"))
    assert set(ca["ca_survival_endpoint"]) == {"discharge" if country == "US" else "30d"}
    assert set(ca["impression_primary"]) == {"I46.9"}
    assert df.filter(pl.col("ca_arrest").is_null())["ca_survived"].null_count() == (
        df.height - ca.height)


@pytest.mark.parametrize("country", ["NO", "US"])
def test_bad_rows_at_the_intended_rate(query: Query, country: str) -> None:
    rows, old, no_level, other_bad = query(country, f"""
        SELECT count(*), count(*) FILTER (WHERE patient_age = {BAD_AGE}),
               count(*) FILTER (WHERE urgency_level IS NULL),
               count(*) FILTER (WHERE patient_age > {RANGES["patient_age"][1]}
                                AND patient_age <> {BAD_AGE})
        FROM {{m}}""")
    expected = rows * BAD_ROW_SHARE / 2
    assert 0.7 * expected < old < 1.3 * expected
    assert 0.7 * expected < no_level < 1.3 * expected
    assert other_bad == 0
