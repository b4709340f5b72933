"""Runs every embedded test case of every indicator spec: adding a spec needs no Python."""

from __future__ import annotations

import pytest

from emsbench.spec_cases import run_case
from emsbench.specs import load_specs

SPECS = load_specs()
CASES = [(spec, case) for spec in SPECS for case in spec.tests]


def test_the_required_indicators_exist() -> None:
    ids = {s.id for s in SPECS}
    assert {"RESP-MED", "RESP-P90", "BCPR", "SURV-UTSTEIN", "ECG-10", "STROKE-PRENOTE"} <= ids


@pytest.mark.parametrize(("spec", "case"), CASES,
                         ids=[f"{s.id}:{c.name}" for s, c in CASES])
def test_spec_case(spec, case) -> None:  # type: ignore[no-untyped-def]
    assert run_case(spec, case) == []


def test_cases_see_the_columns_a_node_derives() -> None:
    """A case's rows get age band and call month as node ingest derives them."""
    from emsbench.spec_cases import rows_to_table

    table = rows_to_table([{"patient_age": 80, "call_received": "2025-03-01 10:00:00",
                            "age_band": "0-17"}], derived=True)
    assert table.column("age_band").to_pylist() == ["80+"]
    assert table.column("call_month").to_pylist() == ["03"]
