"""The JSON-stat 2.0 export: valid against the official schema, and the CSV's rows exactly.

The schema (``data/jsonstat-2.0.schema.json``, source in ``data/README.md``) checks the
structure; the reader below (plain JSON, no JSON-stat library) turns each dataset's cube
back into CSV rows, which must equal the CSV export's rows cell for cell, as text.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import json
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from hub.catalogues import Catalogues
from hub.export import COLUMNS, write_csv
from hub.jsonstat import TOTAL, dumps_jsonstat, jsonstat_path, to_jsonstat, write_jsonstat
from hub.merge import Figure
from hub.report import export_csv, export_jsonstat
from tests.hub.test_export import figure  # one figure factory for the export tests

SCHEMA = json.loads((Path(__file__).parent / "data" / "jsonstat-2.0.schema.json")
                    .read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
METRICS = ("value", "ci_low", "ci_high", "numerator", "denominator", "diff_vs_rest",
           "diff_ci_low", "diff_ci_high", "expected", "coverage")


def _report_fixtures() -> ModuleType:
    """``test_report.py``'s fixture submissions (pytest runs in importlib mode, so the test
    module is not importable by name)."""
    name = "_jsonstat_report_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parent / "test_report.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def validate(doc: dict[str, Any]) -> None:
    """The collection, and each dataset in it as a standalone document (a dataset inside a
    collection carries no ``version``, so the schema's dataset rules apply only so)."""
    VALIDATOR.validate(doc)
    assert doc["class"] == "collection"
    for item in doc["link"]["item"]:
        VALIDATOR.validate({"version": "2.0", **item})


def read_jsonstat(path: Path) -> list[dict[str, str]]:
    """CSV rows from the JSON-stat file: one per cube cell group not marked 'x'."""
    doc = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    rows = []
    for ds in doc["link"]["item"]:
        assert ds["id"] == ["country", "year", "stratum", "metric"]
        cats = [ds["dimension"][d]["category"]["index"] for d in ds["id"]]
        assert ds["size"] == [len(c) for c in cats]
        n = 1
        for c in cats:
            n *= len(c)
        assert len(ds["value"]) == n
        ext, status = ds["extension"], ds.get("status", {})
        meta = {(m["country"], m["year"], m["stratum"]): m for m in ext["figures"]}
        metrics = cats[3]
        seen = set()
        for i, (country, year, stratum) in enumerate(itertools.product(*cats[:3])):
            base = i * len(metrics)
            marks = {status.get(str(base + j)) for j in range(len(metrics))}
            if marks == {"x"}:
                assert all(ds["value"][base + j] is None for j in range(len(metrics)))
                continue
            assert "x" not in marks
            key = (country, int(year), "" if stratum == TOTAL else stratum)
            seen.add(key)
            m = meta[key]
            cells = {name: ds["value"][base + j] for j, name in enumerate(metrics)}
            row = {"indicator_id": ext["indicator_id"], "country": country, "year": year,
                   "stratum": key[2], "suppressed": "true" if m["suppressed"] else "false",
                   "spec_version": ext["spec_version"], "unit": ext["unit"],
                   "n_countries": str(m["n_countries"]), "countries": " ".join(m["countries"]),
                   "omitted": " ".join(m["omitted"]), "method": m["method"]}
            row |= {name: "" if cells.get(name) is None else str(cells[name])
                    for name in METRICS}
            rows.append(row)
        assert seen == set(meta)  # the cube and the row list name the same figures
    return rows


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _key(row: dict[str, str]) -> tuple[str, ...]:
    return (row["indicator_id"], row["spec_version"], row["stratum"], row["country"])


def assert_same_rows(csv_rows: list[dict[str, str]], js_rows: list[dict[str, str]]) -> None:
    assert len(js_rows) == len(csv_rows)
    by_key = {_key(r): r for r in js_rows}
    for row in csv_rows:
        assert by_key[_key(row)] == row, _key(row)


def _cell(doc: dict[str, Any], indicator: str, country: str, stratum: str, metric: str,
          version: str = "1.0.0") -> tuple[Any, str | None]:
    [ds] = [d for d in doc["link"]["item"] if (d["extension"]["indicator_id"],
                                               d["extension"]["spec_version"]) == (
                                                   indicator, version)]
    cats = [ds["dimension"][d]["category"]["index"] for d in ds["id"]]
    pos = 0
    for cat, wanted in zip(cats, (country, cats[1][0], stratum or TOTAL, metric), strict=True):
        pos = pos * len(cat) + cat.index(wanted)
    return ds["value"][pos], ds.get("status", {}).get(str(pos))


def test_the_report_fixture_round_trips_through_json_stat(tmp_path: Path) -> None:
    rep = _report_fixtures()
    specs = rep.fixture_specs()
    view, catalogues = rep.fixture_view(specs), Catalogues.of(specs)
    csv_path = export_csv(view, catalogues, tmp_path / "results.csv")
    js_path = export_jsonstat(view, catalogues, jsonstat_path(csv_path))
    assert js_path == tmp_path / "results.jsonstat.json"
    doc = json.loads(js_path.read_text(encoding="utf-8"))
    validate(doc)
    csv_rows = read_csv(csv_path)
    assert_same_rows(csv_rows, read_jsonstat(js_path))

    surv = "ca_survival_endpoint=30d;ca_witnessed_by=unwitnessed"
    # Iceland's small count is withheld: null values marked 's', no counts.
    [iceland] = [r for r in csv_rows if _key(r) == ("CA-SURV", "1.0.0", surv, "IS")]
    assert iceland["value"] == iceland["numerator"] == "" and iceland["suppressed"] == "true"
    for metric in ("value", "ci_low", "ci_high", "numerator", "denominator"):
        assert _cell(doc, "CA-SURV", "IS", surv, metric) == (None, "s")
    # ... so the Nordic pool without Iceland is partial: its values are marked 'p'.
    [pool] = [r for r in csv_rows if _key(r) == ("CA-SURV", "1.0.0", surv, "NORDIC")]
    assert pool["omitted"] == "IS" and pool["value"]
    value, mark = _cell(doc, "CA-SURV", "NORDIC", surv, "value")
    assert (value, mark) == (float(pool["value"]), "p")
    # Labels are words; the median read off 1-minute bins is a whole number, as in the CSV.
    [rt] = [d for d in doc["link"]["item"] if d["extension"]["indicator_id"] == "RT-MEDIAN"]
    assert rt["label"] == "Response time to life-threatening calls"
    assert rt["dimension"]["country"]["category"]["label"]["NORDIC"] == "Nordic pooled"
    assert rt["dimension"]["stratum"]["category"]["label"]["urbanicity=urban"] == (
        "urbanicity: urban")
    assert rt["dimension"]["metric"]["category"]["unit"]["value"] == {
        "label": "minutes", "decimals": 0}
    assert all(isinstance(v, int) for v in rt["value"] if v is not None)


def edge_figures() -> list[Figure]:
    withheld = dict(numerator=None, denominator=None, value=None, ci_low=None, ci_high=None,
                    suppressed=True, n_countries=0, countries=())
    return [
        figure(diff=-1.25, diff_low=-4.0, diff_high=1.5),
        figure(country="SE", **withheld, omitted=("SE",)),
        figure(country="NORDIC", numerator=31, denominator=120, value=25.83, ci_low=18.9,
               ci_high=34.2, suppressed=True, n_countries=1, countries=("NO",),
               omitted=("SE",)),
        # only the US has this stratum: the other countries' cells are 'x', not rows
        figure(country="US", stratum="urgency_level=U2", value=0.04, ci_low=0.0, ci_high=0.1),
        # a second definition of the indicator is a dataset of its own
        figure(spec_version="2.0.0", value=30.04),
        # an indicator without strata; an exact quantile keeps its two decimals
        figure(indicator_id="RT-P90", unit="minutes", stratum="", numerator=None,
               denominator=812, value=8.5, ci_low=7.996, ci_high=9.0, decimals=2,
               method="exact"),
        figure(indicator_id="RT-P90", unit="minutes", stratum="", country="NORDIC",
               numerator=None, denominator=812, value=8.4, ci_low=8.0, ci_high=9.0, decimals=0,
               method="histogram"),
        figure(indicator_id="CA-OE", unit="ratio", value=0.9612, ci_low=0.71, ci_high=1.27,
               decimals=2, expected=31.21, coverage=0.98765),
    ]


def test_edge_figures_round_trip_as_text(tmp_path: Path) -> None:
    figures = edge_figures()
    csv_path = write_csv(figures, tmp_path / "f.csv")
    js_path = write_jsonstat(figures, [], tmp_path / "f.jsonstat.json")
    doc = json.loads(js_path.read_text(encoding="utf-8"))
    validate(doc)
    csv_rows = read_csv(csv_path)
    assert tuple(csv_rows[0]) == COLUMNS
    assert_same_rows(csv_rows, read_jsonstat(js_path))
    assert [(d["extension"]["indicator_id"], d["extension"]["spec_version"])
            for d in doc["link"]["item"]] == [("CA-OE", "1.0.0"), ("CA-ROSC", "1.0.0"),
                                              ("CA-ROSC", "2.0.0"), ("RT-P90", "1.0.0")]
    text = js_path.read_text(encoding="utf-8")
    for token in ("8.50", "8.00", "-1.2", "0.96", "31.2", "0.988"):
        assert token in text  # the CSV's digits, trailing zeros too
    assert _cell(doc, "RT-P90", "NORDIC", "", "value") == (8, None)
    assert _cell(doc, "CA-OE", "NO", "urgency_level=U1", "coverage") == (0.988, None)
    rosc = [d for d in doc["link"]["item"] if d["extension"]["spec_version"] == "1.0.0"
            and d["extension"]["indicator_id"] == "CA-ROSC"][0]
    assert rosc["dimension"]["metric"]["category"]["index"][-3:] == [
        "diff_vs_rest", "diff_ci_low", "diff_ci_high"]
    assert rosc["dimension"]["stratum"]["category"]["index"] == [
        "urgency_level=U1", "urgency_level=U2"]
    assert _cell(doc, "CA-ROSC", "NO", "urgency_level=U2", "value") == (None, "x")
    assert _cell(doc, "CA-ROSC", "SE", "urgency_level=U1", "numerator") == (None, "s")
    assert _cell(doc, "CA-ROSC", "NORDIC", "urgency_level=U1", "ci_high") == (34.2, "p")


def test_no_figures_make_an_empty_valid_collection(tmp_path: Path) -> None:
    doc = to_jsonstat([], [])
    validate(doc)
    assert doc["link"]["item"] == []
    assert read_jsonstat(write_jsonstat([], [], tmp_path / "e.json")) == []


def test_numbers_are_written_with_the_digits_given() -> None:
    text = dumps_jsonstat({"value": [Decimal("8.50"), Decimal("-0.0"), 3, None, "8.50"]})
    assert json.loads(text) == {"value": [8.5, -0.0, 3, None, "8.50"]}
    assert text.replace(" ", "").replace("\n", "") == '{"value":[8.50,-0.0,3,null,"8.50"]}'
    with pytest.raises(TypeError):
        dumps_jsonstat({"value": [Decimal("NaN")]})


def test_hub_export_writes_the_json_stat_file_beside_the_csv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hub.config
    import hub.source
    from hub.cli import _export

    rep = _report_fixtures()
    specs = rep.fixture_specs()
    monkeypatch.setattr(hub.config, "load_hub_config", lambda path: object())
    monkeypatch.setattr(hub.source, "load_period",
                        lambda cfg, year: (rep.fixture_view(specs), Catalogues.of(specs)))
    out = tmp_path / "results.csv"
    assert _export(argparse.Namespace(config="hub.toml", year=rep.YEAR, out=str(out))) == 0
    js = tmp_path / "results.jsonstat.json"
    assert f"JSON-stat 2.0 written to {js}" in capsys.readouterr().out
    validate(json.loads(js.read_text(encoding="utf-8")))
    assert_same_rows(read_csv(out), read_jsonstat(js))
