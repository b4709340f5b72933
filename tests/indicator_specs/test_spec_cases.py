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
