"""Shared fixtures: tiny mission files written from partial rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from emsbench.spec_cases import rows_to_table


@pytest.fixture
def write_missions(tmp_path: Path) -> Callable[..., Path]:
    """Write partial mission rows (missing columns NULL) as Parquet or CSV."""

    def write(rows: list[dict[str, Any]], name: str = "missions.parquet") -> Path:
        path = tmp_path / name
        table = rows_to_table(rows)
        if path.suffix == ".csv":
            import polars as pl

            pl.from_arrow(table).write_csv(path)  # type: ignore[union-attr]
        else:
            pq.write_table(table, path)
        return path

    return write
