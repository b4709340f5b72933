"""The sandbox refuses file, network and extension access, and a spec trying it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from emsbench.engine import compute
from emsbench.sandbox import SandboxError, open_sandbox, query
from emsbench.specs import IndicatorSpec, SpecError, load_specs


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('{p}')",
    "COPY (SELECT 1) TO '{p}.out'",
    "ATTACH '{p}.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
])
def test_sandbox_refuses(tmp_path: Path, sql: str) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n", encoding="utf-8")
    con = open_sandbox()
    with pytest.raises(SandboxError):
        query(con, sql.format(p=secret), "probe")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.csv"]


def _spec(**overrides: str) -> IndicatorSpec:
    base = load_specs(only=["BCPR"])[0].model_dump()
    base.update(overrides)
    return IndicatorSpec.model_validate(base)


def test_a_spec_expression_reading_a_file_is_refused_when_computed(tmp_path: Path) -> None:
    secret = tmp_path / "rows.csv"
    secret.write_text("a\n1\n", encoding="utf-8")
    spec = _spec(population=f"(SELECT count(*) FROM read_csv('{secret}')) > 0")
    with pytest.raises(SandboxError, match="not in the spec language"):
        compute(open_sandbox(), spec)


@pytest.mark.parametrize("numerator", [
    "true; COPY missions TO '/tmp/emsbench-leak.csv'",
    "true; ATTACH '/tmp/emsbench-leak.db'",
    "true; INSTALL httpfs",
])
def test_spec_validation_refuses_smuggled_statements(tmp_path: Path, numerator: str) -> None:
    spec = _spec(numerator=numerator)
    path = tmp_path / "BCPR.yaml"
    import yaml

    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")), encoding="utf-8")
    with pytest.raises(SpecError, match="one SQL expression"):
        load_specs(tmp_path)
    assert not Path("/tmp/emsbench-leak.csv").exists()


def test_a_query_past_the_time_limit_is_stopped() -> None:
    import time

    con = open_sandbox()
    started = time.monotonic()
    with pytest.raises(SandboxError, match="stopped after 0.5 s"):
        query(con, "SELECT count(*) FROM range(10000000000) a", "probe", timeout=0.5)
    assert time.monotonic() - started < 10
    assert query(con, "SELECT 1", "probe") == [(1,)]  # the connection is still usable


def test_the_memory_limit_is_set_and_locked() -> None:
    con = open_sandbox(memory_limit="256MB")
    [(limit,)] = query(con, "SELECT current_setting('memory_limit')", "probe")
    assert str(limit).replace(" ", "") in {"256.0MiB", "244.1MiB", "256MB", "244MiB"}, limit
    with pytest.raises(SandboxError):
        query(con, "SET memory_limit = '64GB'", "probe")
