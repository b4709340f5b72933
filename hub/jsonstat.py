"""JSON-stat 2.0 export of the merged benchmark figures: the CSV's rows as data cubes.

JSON-stat (https://json-stat.org/format/) is the format the Nordic statistics offices publish
in; this module writes the figures of the CSV export (``hub.export``) in it, for readers
that take a cube rather than a long table. It carries exactly the CSV's rows (the published
figures, the withheld ones marked, nothing more) with the same numbers.

Mapping. The document is a ``collection`` whose ``link.item`` holds one ``dataset`` per
indicator definition (``indicator_id`` and ``spec_version``: two versions of an indicator
are never pooled, so they are two datasets). Each dataset has the dimensions

* ``country`` (role ``geo``): NO, SE, DK, FI, IS, NORDIC (the Nordic pool), US, labelled
  in words ("Nordic pooled");
* ``year`` (role ``time``);
* ``stratum``: the CSV's ``stratum`` (``key=value;key=value``), labelled in words; the
  stratum of an indicator without strata (CSV: empty) has the id ``_T`` ("All cases");
* ``metric`` (role ``metric``): ``value``, ``ci_low``, ``ci_high``, ``numerator``,
  ``denominator`` always, and ``diff_vs_rest``, ``diff_ci_low``, ``diff_ci_high``,
  ``expected``, ``coverage`` where a figure of the dataset has them, each with its
  ``unit`` (label, decimals).

``value`` is the dense cube in that dimension order; a cell the CSV leaves empty is null.
Every number is written with exactly the digits of its CSV cell (``Figure.rounded``: a
median read from 1-minute bins is ``8``, a share ``30.0``, an exact quantile ``8.50``), so
a reader that keeps the number's text (e.g. Python's ``json.loads(parse_float=Decimal)``)
gets the CSV text back and any other reader the same number. ``status`` (sparse, by cell
index) marks

* ``s``: withheld by disclosure control (the cell is null);
* ``p``: a value of a partial pool, one whose country counts were withheld in part;
* ``x``: no figure: the combination of country and stratum is not in the CSV.

The dataset's ``extension`` carries ``indicator_id``, ``spec_version``, ``unit``,
``export_version`` (``hub.export.EXPORT_VERSION``), the status codes' meanings, and
``figures``: per CSV row its ``country``, ``year``, ``stratum`` (as in the CSV) with
``suppressed``, ``n_countries``, ``countries``, ``omitted`` and ``method``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from emsbench.files import write_atomic
from emsbench.specs import IndicatorSpec
from hub.export import EXPORT_VERSION, figure_row, sort_figures
from hub.merge import Figure, country_key, natural_key
from hub.sections import COUNTRY_NAMES, UNIT_TEXT, stratum_text

TOTAL = "_T"  # stratum id of an indicator without strata (the CSV's empty stratum)
CORE_METRICS = ("value", "ci_low", "ci_high", "numerator", "denominator")
OPTIONAL_METRICS = ("diff_vs_rest", "diff_ci_low", "diff_ci_high", "expected", "coverage")
METRIC_LABELS = {
    "value": "Value", "ci_low": "Confidence interval, lower limit",
    "ci_high": "Confidence interval, upper limit", "numerator": "Numerator (count)",
    "denominator": "Denominator (count)",
    "diff_vs_rest": "Difference from the other Nordic countries pooled",
    "diff_ci_low": "Difference, lower limit", "diff_ci_high": "Difference, upper limit",
    "expected": "Expected events", "coverage": "Share of cases counted (0-1)"}
STATUS = {"s": "withheld by disclosure control",
          "p": "partial pool: counts of some countries were withheld",
          "x": "no figure for this country and stratum"}


def jsonstat_path(csv_path: Path | str) -> Path:
    """Where the JSON-stat file beside a CSV export goes: results.csv → results.jsonstat.json."""
    p = Path(csv_path)
    return p.with_name(f"{p.stem}.jsonstat.json")


def _number(text: str) -> Decimal | int | None:
    """A CSV cell's text as a number with the same digits; None when empty or not finite
    (the CSV's text of a non-finite value has no JSON number)."""
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    number = Decimal(text)
    return number if number.is_finite() else None


def _cells(f: Figure) -> dict[str, Decimal | int | None]:
    """The figure's numbers by metric, from the text its CSV row has (``figure_row``)."""
    row = figure_row(f)
    return {m: _number(row[m]) for m in (*CORE_METRICS, *OPTIONAL_METRICS)}


def _stratum_id(stratum: str) -> str:
    return stratum or TOTAL


def _units(unit: str, decimals: int) -> dict[str, dict[str, Any]]:
    words = UNIT_TEXT.get(unit, unit)
    diff = "percentage points" if unit == "percent" else words
    count = {"label": "count", "decimals": 0}
    return {"value": {"label": words, "decimals": decimals},
            "ci_low": {"label": words, "decimals": decimals},
            "ci_high": {"label": words, "decimals": decimals},
            "numerator": count, "denominator": count,
            "diff_vs_rest": {"label": diff, "decimals": decimals},
            "diff_ci_low": {"label": diff, "decimals": decimals},
            "diff_ci_high": {"label": diff, "decimals": decimals},
            "expected": {"label": "events", "decimals": 1},
            "coverage": {"label": "share", "decimals": 3}}


def _dimension(label: str, ids: list[str], labels: dict[str, str],
               unit: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    category: dict[str, Any] = {"index": ids, "label": {i: labels[i] for i in ids}}
    if unit is not None:
        category["unit"] = {i: unit[i] for i in ids}
    return {"label": label, "category": category}


def _dataset(figures: list[Figure], spec: IndicatorSpec | None) -> dict[str, Any]:
    first = figures[0]
    cells = {(f.country, f.year, _stratum_id(f.stratum)): _cells(f) for f in figures}
    by_key = {(f.country, f.year, _stratum_id(f.stratum)): f for f in figures}
    countries = sorted({f.country for f in figures}, key=country_key)
    years = sorted({f.year for f in figures})
    strata = sorted({f.stratum for f in figures}, key=natural_key)
    metrics = [*CORE_METRICS, *(m for m in OPTIONAL_METRICS
                                if any(c[m] is not None for c in cells.values()))]
    values: list[Decimal | int | None] = []
    status: dict[str, str] = {}
    for c in countries:
        for y in years:
            for s in strata:
                key = (c, y, _stratum_id(s))
                f = by_key.get(key)
                for m in metrics:
                    v = None if f is None else cells[key][m]
                    if f is None:
                        status[str(len(values))] = "x"
                    elif v is None and f.suppressed:
                        status[str(len(values))] = "s"
                    elif v is not None and f.omitted:
                        status[str(len(values))] = "p"
                    values.append(v)
    decimals = max(f.decimals for f in figures)
    dataset: dict[str, Any] = {
        "class": "dataset",
        "label": spec.title if spec is not None else first.indicator_id,
        "id": ["country", "year", "stratum", "metric"],
        "size": [len(countries), len(years), len(strata), len(metrics)],
        "role": {"geo": ["country"], "time": ["year"], "metric": ["metric"]},
        "dimension": {
            "country": _dimension("Country", countries,
                                  {c: COUNTRY_NAMES.get(c, c) for c in countries}),
            "year": _dimension("Year", [str(y) for y in years], {str(y): str(y) for y in years}),
            "stratum": _dimension("Stratum", [_stratum_id(s) for s in strata],
                                  {_stratum_id(s): stratum_text(s) for s in strata}),
            "metric": _dimension("Measure", metrics, METRIC_LABELS,
                                 _units(first.unit, decimals)),
        },
        "value": values,
        "extension": {
            "indicator_id": first.indicator_id, "spec_version": first.spec_version,
            "unit": first.unit, "export_version": EXPORT_VERSION, "status": STATUS,
            "figures": [{"country": f.country, "year": f.year, "stratum": f.stratum,
                         "suppressed": f.suppressed, "n_countries": f.n_countries,
                         "countries": list(f.countries), "omitted": list(f.omitted),
                         "method": f.method} for f in figures]},
    }
    if status:
        dataset["status"] = status
    if spec is not None:
        dataset["note"] = [spec.description]
    return dataset


def to_jsonstat(figures: Iterable[Figure], specs: Sequence[IndicatorSpec]) -> dict[str, Any]:
    """The JSON-stat 2.0 collection of ``figures`` (one dataset per indicator definition).

    Numbers are ``Decimal`` (values, intervals) or ``int`` (counts) holding the CSV cell's
    digits; ``dumps_jsonstat`` writes them as JSON numbers with those digits."""
    by_def: dict[tuple[str, str], list[Figure]] = {}
    for f in sort_figures(figures):
        by_def.setdefault((f.indicator_id, f.spec_version), []).append(f)
    rank = {(s.id, s.version): i for i, s in enumerate(specs)}
    spec_of = {(s.id, s.version): s for s in specs}
    keys = sorted(by_def, key=lambda k: (k[0], rank.get(k, len(rank)), k[1]))
    return {"version": "2.0", "class": "collection",
            "label": "emsbench: ambulance service benchmark figures",
            "note": ["Only published figures: withheld values are null with status 's'."],
            "extension": {"export_version": EXPORT_VERSION},
            "link": {"item": [_dataset(by_def[k], spec_of.get(k)) for k in keys]}}


def dumps_jsonstat(doc: dict[str, Any]) -> str:
    """``doc`` as JSON text, each ``Decimal`` written as a number with its own digits."""
    marker = f"@dec-{secrets.token_hex(8)}:"

    def exact(obj: object) -> str:
        if isinstance(obj, Decimal) and obj.is_finite():
            return marker + str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    text = json.dumps(doc, default=exact, ensure_ascii=False, indent=1)
    return re.sub('"' + re.escape(marker) + r'(-?\d+(?:\.\d+)?)"', r"\1", text)


def write_jsonstat(figures: Iterable[Figure], specs: Sequence[IndicatorSpec],
                   path: Path | str) -> Path:
    """Write ``figures`` as a JSON-stat 2.0 collection (UTF-8); returns the path written."""
    return write_atomic(Path(path), (dumps_jsonstat(to_jsonstat(figures, specs)) + "\n")
                        .encode("utf-8"))

