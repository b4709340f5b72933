"""Synthetic files shared by the synth tests, generated once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from node.synth.generator import generate

CALIBRATION_ROWS = 200_000


@pytest.fixture(scope="session")
def synth_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Path of a 200,000-row file for a country, 2025, default seed (made on first use)."""
    cache: dict[str, Path] = {}

    def get(country: str) -> Path:
        if country not in cache:
            out = tmp_path_factory.mktemp("synth") / f"{country}.parquet"
            generate(country, 2025, out, rows=CALIBRATION_ROWS)
            cache[country] = out
        return cache[country]

    return get


@pytest.fixture(scope="session")
def query(synth_file: Callable[[str], Path]) -> Callable[[str, str], tuple[Any, ...]]:
    """Run SQL over a country's file (written ``{m}`` in the query); return the first row."""
    con = duckdb.connect()
    views: set[str] = set()

    def run(country: str, sql: str) -> tuple[Any, ...]:
        view = f"m_{country.lower()}"
        if view not in views:
            path = synth_file(country)
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{path}')")
            views.add(view)
        row = con.execute(sql.replace("{m}", view)).fetchone()
        assert row is not None
        return row

    return run
