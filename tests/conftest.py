"""Shared fixtures: tiny mission files written from partial rows."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from emsbench.spec_cases import rows_to_table

# No telemetry from the temporary Prefect servers the tests start (the network is closed).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A Prefect home of the session's own, not ~/.prefect (what Prefect stores of failed tasks,
# its memo store, a temporary server's database); set before anything imports Prefect.
if not os.environ.get("PREFECT_HOME"):
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="emsbench-tests-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
# Every chart the tests draw is checked against the Vega-Lite schema (hub.chart_render skips it
# outside the tests, where it is a third of a chart's time).
os.environ.setdefault("EMSBENCH_VALIDATE_CHARTS", "1")


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


@pytest.fixture(scope="session")
def prefect_harness():  # type: ignore[no-untyped-def]
    """One temporary Prefect database and server for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield
