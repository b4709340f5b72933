"""Secondary suppression across margins: no withheld count can be recovered by subtraction.

The property tests draw random data sets and random specs on one population (shares with
one of two numerators and a distribution, each stratified by a random subset of
urgency_level and urbanicity, so one is often a margin of another), protect them as a node
does, and check the release with a model of their own: the data set's cells as unknowns
(population × numerator 1 × numerator 2 × measure present, per urgency level and
urbanicity), every released count an equation, the data-quality equation beside them. A
withheld count is recoverable iff its vector lies in the row space of the released ones
(a numpy rank test); a sum of withheld counts likewise, and then it must not be small.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emsbench.conformance import Policy, check_document
from emsbench.kinds import is_small
from emsbench.margins import Margins, margin_problems
from emsbench.specs import IndicatorSpec, catalogue_sha256, stratum_grid, stratum_values
from emsbench.wire import Cell, DataQuality, IndicatorResult, Period, Submission
from node.disclosure import (
    protect,
    protect_margins,
    protect_quality,
    protect_release,
    quality_suppressions,
)
from node.outbox import Signed
from node.preview import suppressions, write_preview
from node.suppression import (
    COARSENED,
    PRIMARY,
    QUALITY,
    Suppression,
    stratum_label,
)

DIMS = ("urgency_level", "urbanicity")
POPULATION = "service_type = 'emergency'"
NUMERATORS = {"q1": "coalesce(transported, false)", "q2": "coalesce(cancelled, false)"}
MEASURE = "date_diff('second', call_received, arrived_scene) / 60.0"
N_BINS = 3
FINEST = list(itertools.product(*(stratum_values(d) for d in DIMS)))
# One unknown per finest stratum × numerator 1 × numerator 2 × measure present.
ATOMS = [(key, q1, q2, valid) for key in FINEST
         for q1, q2, valid in itertools.product((True, False), repeat=3)]
REASONS = ("missing:urgency_level", "outside_period", "duplicate:mission_id")


def make_spec(spec_id: str, kind: str, strata: list[str],
              population: str = POPULATION) -> IndicatorSpec:
    body: dict[str, Any] = {
        "id": spec_id, "version": "1.0.0", "title": "A test spec",
        "description": "A spec made up by the margin tests.", "direction": "descriptive",
        "population": population, "strata": strata,
        "tests": [{"name": "none", "rows": [], "expect": []}]}
    if kind == "distribution":
        body |= {"type": "distribution", "unit": "minutes", "measure": MEASURE,
                 "bins": {"start": 0, "width": 1, "count": N_BINS - 1}, "quantile": 0.5}
    else:
        body |= {"type": "share", "unit": "percent", "numerator": NUMERATORS[kind]}
    return IndicatorSpec.model_validate(body)


def _bin(atom: tuple[Any, ...]) -> int:
    return FINEST.index(atom[0]) % N_BINS


def _matches(atom: tuple[Any, ...], spec: IndicatorSpec, key: tuple[str, ...]) -> bool:
    where = dict(zip(DIMS, atom[0], strict=True))
    return all(where[s] == v for s, v in zip(spec.strata, key, strict=True))


def compute(spec: IndicatorSpec, data: dict[tuple[Any, ...], int]) -> IndicatorResult:
    """The full-grid, unprotected result of ``spec`` on ``data`` (atom → cases)."""
    cells = []
    for key in stratum_grid(spec.strata):
        stratum = dict(zip(spec.strata, key, strict=True))
        here = {a: n for a, n in data.items() if _matches(a, spec, key)}
        if spec.type == "distribution":
            bins = [0] * N_BINS
            for a, n in here.items():
                if a[3]:
                    bins[_bin(a)] += n
            cells.append(Cell(stratum=stratum, bins=[(b, b, n) for b, n in enumerate(bins) if n]))
        else:
            q = 1 if spec.numerator == NUMERATORS["q1"] else 2
            cells.append(Cell(stratum=stratum, denominator=sum(here.values()),
                              numerator=sum(n for a, n in here.items() if a[q])))
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version,
                           spec_sha256=spec.sha256, type=spec.type, strata=spec.strata,
                           cells=cells)


def _vec(spec: IndicatorSpec, key: tuple[str, ...], what: str, atoms: list[tuple[Any, ...]]
         ) -> np.ndarray:
    q = 1 if spec.numerator == NUMERATORS["q1"] else 2
    out = np.zeros(len(atoms) + 1 + len(REASONS))
    for i, a in enumerate(atoms):
        if not _matches(a, spec, key):
            continue
        if what == "cases":
            out[i] = 1.0 if a[3] else 0.0
        elif what == "denominator":
            out[i] = 1.0
        elif what == "numerator":
            out[i] = 1.0 if a[q] else 0.0
        else:  # complement
            out[i] = 0.0 if a[q] else 1.0
    return out


def linear_system(specs: list[IndicatorSpec], released: list[IndicatorResult],
                  quality: tuple[Any, ...], atoms: list[tuple[Any, ...]]
                  ) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """(rows of the released counts, (name, vector) of every withheld count) over the
    unknowns ``atoms``, then rows accepted and each rejection reason."""
    rows: list[np.ndarray] = []
    hidden: list[tuple[str, np.ndarray]] = []
    for spec, result in zip(specs, released, strict=True):
        for cell in result.cells:
            key = tuple(cell.stratum[s] for s in spec.strata)
            name = f"{spec.id}/{key}"
            if spec.type == "distribution":
                v = _vec(spec, key, "cases", atoms)
                (hidden.append((f"{name} cases", v)) if cell.bins is None else rows.append(v))
                continue
            for what, value in (("numerator", cell.numerator),
                                ("denominator", cell.denominator)):
                v = _vec(spec, key, what, atoms)
                (hidden.append((f"{name} {what}", v)) if value is None else rows.append(v))
            if cell.numerator is None:
                hidden.append((f"{name} complement", _vec(spec, key, "complement", atoms)))
    read, accepted, reasons = quality
    base = len(atoms)
    unit = np.eye(len(atoms) + 1 + len(REASONS))
    total = unit[base] + sum(unit[base + 1 + i] for i in range(len(REASONS)))
    (rows.append(total) if read is not None else hidden.append(("rows_read", total)))
    (rows.append(unit[base]) if accepted is not None
     else hidden.append(("rows_accepted", unit[base])))
    for i, r in enumerate(REASONS):
        (rows.append(unit[base + 1 + i]) if reasons[r] is not None
         else hidden.append((f"rejected {r}", unit[base + 1 + i])))
    return (np.array(rows) if rows else np.zeros((0, len(unit)))), hidden


def determined(a: np.ndarray, v: np.ndarray) -> bool:
    """Whether ``v`` lies in the row space of ``a``: the rank does not grow."""
    if not len(a):
        return False
    return bool(np.linalg.matrix_rank(np.vstack([a, v])) == np.linalg.matrix_rank(a))


def true_value(v: np.ndarray, data: dict[tuple[Any, ...], int], atoms: list[tuple[Any, ...]],
               quality: list[int]) -> float:
    return float(v @ np.array([data.get(a, 0) for a in atoms] + quality))


count = st.one_of(st.just(0), st.integers(1, 4), st.integers(5, 40))
spec_choice = st.tuples(st.sampled_from(["q1", "q1", "q2", "distribution"]),
                        st.sets(st.sampled_from(DIMS)))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(threshold=st.integers(3, 7),
       counts=st.lists(count, min_size=len(ATOMS), max_size=len(ATOMS)),
       chosen=st.lists(spec_choice, min_size=2, max_size=4),
       accepted_rejected=st.tuples(st.integers(0, 40), st.lists(count, min_size=3,
                                                                max_size=3)))
def test_no_withheld_count_is_recoverable_from_released_figures(
        threshold: int, counts: list[int], chosen: list[tuple[str, set[str]]],
        accepted_rejected: tuple[int, list[int]]) -> None:
    data = {a: n for a, n in zip(ATOMS, counts, strict=True) if n}
    specs = [make_spec(f"M-{i}", kind, [d for d in DIMS if d in strata])
             for i, (kind, strata) in enumerate(chosen)]
    raw = [compute(s, data) for s in specs]
    released = protect_release(raw, specs, threshold)

    accepted, rejected_counts = accepted_rejected
    rejected = dict(zip(REASONS, rejected_counts, strict=True))
    read = accepted + sum(rejected.values())
    quality = protect_quality(read, accepted, rejected, threshold)

    # 1. no released count from 1 to k − 1 (numerator, denominator, complement, runs, rows)
    for r in released:
        for c in r.cells:
            if c.numerator is not None and c.denominator is not None:
                got = (c.numerator, c.denominator, c.denominator - c.numerator)
                assert not any(is_small(n, threshold) for n in got), (r.spec_id, c)
            assert not any(is_small(n, threshold) for _, _, n in c.bins or []), (r.spec_id, c)
    assert not any(is_small(n, threshold) for n in
                   (quality[0], quality[1], *quality[2].values()))

    # 2. no withheld count lies in the row space of the released ones. The adversary knows
    # a distribution's cases are the population when no case lacks a value.
    atoms = [a for a in ATOMS if a[3] or any(n for b, n in data.items() if not b[3])]
    rows, hidden = linear_system(specs, list(released), quality, atoms)
    recovered = [name for name, v in hidden if determined(rows, v)]
    assert not recovered, (recovered, released.suppressions)

    # 3. nor a sum of a few withheld counts of one kind that is from 1 to k − 1
    values = [data.get(a, 0) for a in atoms]
    truth = [accepted, *rejected_counts]
    by_kind: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, v in hidden:
        by_kind.setdefault(name.rsplit(" ", 1)[-1], []).append((name, v))
    for group in by_kind.values():
        sizes = (2, 3) if len(group) <= 10 else (2,)
        for size in sizes:
            for subset in itertools.combinations(group, size):
                v = sum(vec for _, vec in subset)
                assert isinstance(v, np.ndarray)
                if determined(rows, v):
                    total = true_value(v, dict(zip(atoms, values, strict=True)), atoms, truth)
                    assert not is_small(round(total), threshold), [n for n, _ in subset]

    # 4. the hub's intake check agrees, and every suppression has its record
    by_id = {s.id: s for s in specs}
    assert margin_problems(list(released), by_id, threshold) == []
    withheld = {(r.spec_id, stratum_label(c.stratum)) for r in released for c in r.cells
                if c.suppressed}
    recorded = {(s.indicator, s.stratum) for s in released.suppressions
                if s.reason != COARSENED}
    assert withheld == recorded


def _share(spec: IndicatorSpec, cells: list[tuple[dict[str, str], int, int]]
           ) -> IndicatorResult:
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version,
                           spec_sha256=spec.sha256, type="share", strata=spec.strata,
                           cells=[Cell(stratum=s, numerator=n, denominator=d)
                                  for s, n, d in cells])


TOTAL = make_spec("TOTAL", "q1", [])
FINE = make_spec("FINE", "q1", ["urgency_level"])


def _fine(u1: tuple[int, int] = (2, 10)) -> list[IndicatorResult]:
    fine = [({"urgency_level": "U1"}, *u1), ({"urgency_level": "U2"}, 20, 40),
            ({"urgency_level": "U3"}, 28, 50), ({"urgency_level": "unknown"}, 0, 0)]
    n, d = sum(c[1] for c in fine), sum(c[2] for c in fine)
    return [_share(TOTAL, [({}, n, d)]), _share(FINE, fine)]


def test_a_withheld_cell_takes_its_smallest_sibling_with_it() -> None:
    raw = _fine()
    out = protect_release(raw, [TOTAL, FINE], 5)
    got = [(c.stratum["urgency_level"], c.suppressed) for c in out[1].cells]
    assert got == [("U1", True), ("U2", True), ("U3", False), ("unknown", False)]
    assert not out[0].cells[0].suppressed  # the total stays: siblings go first
    assert out.suppressions == [
        Suppression("FINE", "urgency_level=U1", "numerator", PRIMARY),
        Suppression("FINE", "urgency_level=U2", "numerator",
                    "secondary: margin of FINE/urgency_level=U1")]


def test_primary_protection_alone_is_refused_by_the_intake_check() -> None:
    primary = [protect(r, s, 5) for r, s in zip(_fine(), [TOTAL, FINE], strict=True)]
    problems = margin_problems(primary, {"TOTAL": TOTAL, "FINE": FINE}, 5)
    assert [p.code for p in problems] == ["recoverable_by_subtraction"]  # one per cell
    assert str(problems[0]) == (
        "recoverable_by_subtraction: indicator FINE, stratum urgency_level=U1: the withheld "
        "numerator, denominator, complement are recoverable from the released TOTAL/(all), "
        "FINE/urgency_level=U2, FINE/urgency_level=U3, FINE/urgency_level=unknown; withhold "
        "more cells (secondary suppression)")
    specs = [TOTAL, FINE]
    sub = Submission(submission_id="IS-2025-margins", country="IS", period=Period(year=2025),
                     catalogue=catalogue_sha256(specs), revision=1,
                     created_at=datetime(2026, 1, 5, tzinfo=UTC), software_version="t",
                     model_version="t", disclosure_threshold=5,
                     data_quality=DataQuality(rows_read=None, rows_accepted=None),
                     indicators=primary)
    found = check_document(sub, specs, catalogue_sha256(specs), Policy(),
                           datetime(2026, 1, 6, tzinfo=UTC))
    assert "recoverable_by_subtraction" in {p.code for p in found}


def test_a_small_sum_of_withheld_cells_is_completed_to_the_threshold() -> None:
    # U1 (n = 1) and U2 (n = 1) are both withheld by the primary rule; their sum, 2, is
    # recoverable from the total, so the smallest sibling with a numerator goes too.
    fine = [({"urgency_level": "U1"}, 1, 10), ({"urgency_level": "U2"}, 1, 40),
            ({"urgency_level": "U3"}, 28, 50), ({"urgency_level": "unknown"}, 6, 30)]
    raw = [_share(TOTAL, [({}, 36, 130)]), _share(FINE, fine)]
    out = protect_release(raw, [TOTAL, FINE], 5)
    assert [c.suppressed for c in out[1].cells] == [True, True, False, True]
    assert out.suppressions[-1] == Suppression(
        "FINE", "urgency_level=unknown", "numerator",
        "secondary: margin of FINE/urgency_level=U1")


def test_twins_and_a_distribution_of_the_same_population_are_margins_too() -> None:
    share = make_spec("SH", "q1", [])
    other = make_spec("SH-Q2", "q2", [])
    dist = make_spec("DI", "distribution", [])
    data = {(FINEST[0], True, False, True): 3, (FINEST[1], False, True, True): 40,
            (FINEST[2], False, False, True): 20}
    raw = [compute(s, data) for s in (share, other, dist)]
    out = protect_release(raw, [share, other, dist], 5)
    # SH is withheld (3 of 63); SH-Q2 (40 of 63) would give its denominator away, and so
    # would DI's cases (every case has a value): both are withheld with it.
    assert [r.cells[0].suppressed for r in out] == [True, True, True]
    assert out.suppressions == [
        Suppression("SH", "(all)", "numerator", PRIMARY),
        Suppression("SH-Q2", "(all)", "denominator", "secondary: margin of SH/(all)"),
        Suppression("DI", "(all)", "denominator", "secondary: margin of SH/(all)")]
    # The hub sees no link it cannot establish: the released totals would have to agree.
    assert Margins(list(out), {s.id: s for s in (share, other, dist)}).links == frozenset()


def test_a_distribution_with_cases_missing_values_is_not_linked() -> None:
    share = make_spec("SH", "q1", [])
    dist = make_spec("DI", "distribution", [])
    data = {(FINEST[0], True, False, True): 3, (FINEST[1], False, True, True): 40,
            (FINEST[2], False, False, False): 7}
    raw = [compute(s, data) for s in (share, dist)]
    out, more = protect_margins([protect(r, s, 5) for r, s in zip(raw, (share, dist),
                                                                  strict=True)],
                                [share, dist], 5, raw=raw)
    assert [r.cells[0].suppressed for r in out] == [True, False] and more == []


def test_a_ratio_split_by_case_mix_is_a_margin_of_a_share_and_keeps_its_sizes() -> None:
    ratio = IndicatorSpec.model_validate(
        make_spec("RATIO", "q1", []).model_dump() | {
            "type": "ratio", "unit": "ratio", "adjust_for": {"sex": "patient_sex"}})
    cells = [({"sex": "female"}, 2, 20), ({"sex": "male"}, 18, 50), ({"sex": "unknown"}, 10, 30)]
    raw = [_share(TOTAL, [({}, 30, 100)]), IndicatorResult(
        spec_id="RATIO", spec_version="1.0.0", spec_sha256=ratio.sha256, type="ratio",
        strata=["sex"], cells=[Cell(stratum=s, numerator=n, denominator=d) for s, n, d in cells])]
    out = protect_release(raw, [TOTAL, ratio], 5)
    # female's 2 survivors are withheld (its 20 cases stay, as the kind's rule has it); the
    # total would give them away, so the smallest sibling's numerator goes too
    assert [(c.numerator, c.denominator, c.suppressed) for c in out[1].cells] == [
        (None, 20, True), (18, 50, False), (None, 30, True)]
    assert out.suppressions == [
        Suppression("RATIO", "sex=female", "numerator", PRIMARY),
        Suppression("RATIO", "sex=unknown", "numerator", "secondary: margin of RATIO/sex=female")]
    assert margin_problems(list(out), {"TOTAL": TOTAL, "RATIO": ratio}, 5) == []


def test_quality_suppressions_name_their_reason() -> None:
    released = protect_quality(120, 100, {"a": 2, "b": 18}, 5)
    assert released == (120, 100, {"a": None, "b": None})
    assert quality_suppressions(120, 100, {"a": 2, "b": 18}, released, 5) == [
        Suppression("data_quality", "rejected a", "rows", PRIMARY),
        Suppression("data_quality", "rejected b", "rows", QUALITY)]


def test_the_release_preview_lists_every_suppression_with_its_reason(tmp_path: Path) -> None:
    raw = _fine()
    out = protect_release(raw, [TOTAL, FINE], 5)
    quality = protect_quality(120, 100, {"a": 2, "b": 18}, 5)
    sub = Submission(submission_id="IS-2025-preview", country="IS", period=Period(year=2025),
                     catalogue="0" * 64, revision=1,
                     created_at=datetime(2026, 1, 5, tzinfo=UTC), software_version="t",
                     model_version="t", disclosure_threshold=5,
                     data_quality=DataQuality(rows_read=quality[0], rows_accepted=quality[1],
                                              rejected_by_reason=quality[2]),
                     indicators=list(out))
    recorded = [*out.suppressions, *quality_suppressions(120, 100, {"a": 2, "b": 18},
                                                          quality, 5)]
    signed = Signed(tmp_path / "x.json", {}, sub, "f" * 64)
    preview = write_preview(signed, tmp_path / "reports", recorded)

    listed = suppressions(sub, recorded)
    assert [(s.indicator, s.stratum, s.reason) for s in listed] == [
        ("FINE", "urgency_level=U1", PRIMARY),
        ("FINE", "urgency_level=U2", "secondary: margin of FINE/urgency_level=U1"),
        ("data_quality", "rejected a", PRIMARY),
        ("data_quality", "rejected b", QUALITY)]
    page = preview.html.read_text(encoding="utf-8")
    assert "Withheld and why (4 suppressions)" in page
    assert "secondary: margin of FINE/urgency_level=U1" in page
    assert "withheld (secondary: data-quality total)" in page
    cells = preview.csv.read_text(encoding="utf-8").splitlines()
    assert cells[0].endswith(",withheld,reason")
    assert "FINE,1.0.0,urgency_level=U1,,,,yes,primary: 1..k−1 (numerator)" in cells
    assert preview.suppressions is not None
    table = preview.suppressions.read_text(encoding="utf-8").splitlines()
    assert table[0] == "indicator,stratum,count,reason" and len(table) == 5
    assert "data_quality,rejected a,rows,primary: 1..k−1" in table


def test_a_preview_without_recorded_reasons_says_so(tmp_path: Path) -> None:
    out = protect_release(_fine(), [TOTAL, FINE], 5)
    sub = Submission(submission_id="IS-2025-unrecorded", country="IS",
                     period=Period(year=2025), catalogue="0" * 64, revision=1,
                     created_at=datetime(2026, 1, 5, tzinfo=UTC), software_version="t",
                     model_version="t", disclosure_threshold=5,
                     data_quality=DataQuality(rows_read=10, rows_accepted=10),
                     indicators=list(out))
    reasons = [s.reason for s in suppressions(sub)]
    assert reasons == ["withheld (no reason recorded)"] * 2
