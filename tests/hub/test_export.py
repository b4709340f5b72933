"""The CSV export: no cell a spreadsheet would run as a formula (CSV injection)."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hub.export import COLUMNS, figure_row, safe_text, write_csv
from hub.merge import Figure

TEXT_FIELDS = ("indicator_id", "country", "stratum", "spec_version", "unit")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Python's csv writer quotes a field only for characters of its own line terminator: with
# "\n" a bare CR went out unquoted and split the row on reading (found by this test).
PARSE_CASES = list(FORMULA_STARTS)


def figure(**changes: Any) -> Figure:
    base = Figure(indicator_id="CA-ROSC", spec_version="1.0.0", unit="percent", country="NO",
                  year=2025, stratum="urgency_level=U1", numerator=30, denominator=100,
                  value=30.0, ci_low=21.9, ci_high=39.6, suppressed=False, n_countries=1,
                  countries=("NO",))
    return replace(base, **changes)


def read_back(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=repr)
def test_safe_text_prefixes_a_leading_formula_character(start: str) -> None:
    text = f"{start}HYPERLINK(\"http://x\")"
    assert safe_text(text) == "'" + text


@pytest.mark.parametrize("text", ["", "CA-ROSC", "urgency_level=U1", "1.0.0", "per_100k",
                                  "a=b", "x+1", "NO", "'quoted"])
def test_safe_text_keeps_ordinary_values(text: str) -> None:
    assert safe_text(text) == text


def _evil(start: str) -> dict[str, str]:
    return {name: f"{start}cmd|' /C calc'!A0 {name}" for name in TEXT_FIELDS}


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=repr)
def test_every_text_field_of_a_row_gets_a_leading_apostrophe(start: str) -> None:
    evil = _evil(start)
    row = figure_row(figure(**evil))
    for name, value in evil.items():
        assert row[name] == "'" + value, name


@pytest.mark.parametrize("start", PARSE_CASES, ids=repr)
def test_escaped_fields_read_back_from_the_csv(start: str, tmp_path: Path) -> None:
    evil = _evil(start)
    path = write_csv([figure(**evil), figure(country="SE")], tmp_path / "figures.csv")
    rows = read_back(path)
    assert len(rows) == 2  # a CR or tab inside a field does not break the row apart
    [bad] = [r for r in rows if r["country"] != "SE"]
    for name, value in evil.items():
        assert bad[name] == "'" + value, name
    # the numbers beside the escaped text are untouched
    assert (bad["numerator"], bad["denominator"], bad["value"], bad["suppressed"]) == (
        "30", "100", "30.0", "false")


def test_ordinary_figures_are_written_unchanged(tmp_path: Path) -> None:
    f = figure()
    [row] = read_back(write_csv([f], tmp_path / "figures.csv"))
    assert row == figure_row(f)
    assert row == {"indicator_id": "CA-ROSC", "country": "NO", "year": "2025",
                   "stratum": "urgency_level=U1", "numerator": "30", "denominator": "100",
                   "value": "30.0", "ci_low": "21.9", "ci_high": "39.6",
                   "suppressed": "false", "spec_version": "1.0.0", "unit": "percent",
                   "n_countries": "1", "countries": "NO", "omitted": "",
                   "diff_vs_rest": "", "diff_ci_low": "", "diff_ci_high": "",
                   "method": "", "expected": "", "coverage": ""}


def test_missing_values_are_empty_and_negative_numbers_stay_numbers() -> None:
    row = figure_row(figure(numerator=None, denominator=None, value=-1.5, ci_low=None,
                            ci_high=None, suppressed=True))
    assert (row["numerator"], row["denominator"], row["ci_low"], row["ci_high"]) == (
        "", "", "", "")
    assert row["value"] == "-1.5" and row["suppressed"] == "true"


def test_values_carry_the_precision_their_resolution_supports(tmp_path: Path) -> None:
    """A median read from 1-minute bins is not known to 0.01 min: it is written as 8, and
    from 0.5-minute bins as 8.5; a share keeps one decimal."""
    from emsbench.figure import spec_decimals as decimals
    from emsbench.specs import Bins, ExpectedCell, IndicatorSpec, SpecTestCase

    def spec(width: float | None) -> IndicatorSpec:
        fields: dict[str, Any] = ({"type": "share", "numerator": "true", "unit": "percent"}
                                  if width is None else
                                  {"type": "distribution", "measure": "1.0", "quantile": 0.5,
                                   "unit": "minutes", "bins": Bins(start=0, width=width,
                                                                   count=10)})
        return IndicatorSpec(id="X", version="1.0.0", title="Resolution",
                             description="A spec for the precision test.",
                             direction="descriptive", population="true",
                             tests=[SpecTestCase(name="t", rows=[], expect=[ExpectedCell()])],
                             **fields)

    assert [decimals(spec(w)) for w in (None, 1, 0.5, 0.25, 10, 0.1)] == [1, 0, 1, 2, 0, 1]
    minutes = figure(unit="minutes", value=8.4567, ci_low=7.51, ci_high=9.49, decimals=0)
    [row] = read_back(write_csv([minutes], tmp_path / "m.csv"))
    assert (row["value"], row["ci_low"], row["ci_high"]) == ("8", "8", "9")
