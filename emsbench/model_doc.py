"""Writes ``docs/information-model.md`` from the model, so the document cannot drift.

Run ``python -m emsbench.model_doc`` after changing ``emsbench.model`` (or the reference
data); a test checks the committed document equals what this module writes.

``python -m emsbench.model_doc --nemsis PATH/nemsis-v3.5.1-elements.json`` also rewrites
``emsbench/data/nemsis-v3.5.1-elements.csv``, the extract of the NEMSIS element list (name,
code values) for every element the model names; a test checks each NEMSIS id and code in
the model against it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from emsbench import model, reference
from emsbench.crosswalk import crosswalk

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "information-model.md"
NEMSIS_PATH = Path(__file__).resolve().parent / "data" / "nemsis-v3.5.1-elements.csv"

INTRO = """\
# Common information model v{version}

One row per ambulance mission (an incident response by the first unit), the same in every
country. Nodes map their national data to this model before anything is computed; indicator
specs are DuckDB SQL over a table `missions` with exactly these columns.

- Defined once in code: `emsbench/model.py` (pydantic class `Mission`). The Arrow schemas
  (`model.arrow_schema()` for the table, `model.input_schema()` for an input file), the
  DuckDB types used to validate input and this document are all derived from it.
  Regenerate this file with `python -m emsbench.model_doc`.
- Timestamps are local time of the dispatch centre, without time zone.
- The clinical blocks are prefixed columns: `ca_` cardiac arrest (Utstein items), `stemi_`,
  `stroke_`, `med_` medications. They are empty (NULL) for missions outside the block.
- **NEMSIS** gives the NEMSIS v3.5.1 element that the field corresponds to (the US input
  adapter maps from it); an empty cell means NEMSIS has no such element. Code-set columns
  list the NEMSIS code values of each of their values.
- **required**: `yes` columns must be present and non-empty; `derived` columns are computed
  by the node and never read from the input file (see below); every other column may be
  missing from an input file (it is then NULL for all rows).
- How a working group proposes a change to this model: `docs/model-changes.md`.

## Validation at the node

Every row gets the first check it fails, in this order, and is then rejected and counted
under that reason in the submission's `data_quality.rejected_by_reason`:

1. `missing:<column>`: a required column is empty;
2. `unparseable:<column>`: a value does not convert to the column's type (CSV input);
3. `invalid_code:<column>`: a value outside the column's code set;
4. `out_of_range:<column>`: a number outside its range ({ranges});
5. `outside_period`: the call was not received in the reporting year.

Missing or inconsistent times do not reject a row: each indicator's population says which
rows it needs (for example, response time excludes missing and negative intervals).

## Derived at the node

One source of truth: these columns are computed from the input in the same pass that
validates it, with the DuckDB SQL below (and by `Mission` the same way in Python). A column
of a derived name in the input file is ignored. `completed` columns are read from the input
and then completed by their rule.

| column | kind | rule |
|---|---|---|
"""

COLUMNS = """
## Columns

| column | type | required | NEMSIS | block | description |
|---|---|---|---|---|---|
"""

REFERENCE = """
## Reference data per node

Not per mission: each node holds, beside its missions, the official population (the
denominator of rates per 100,000) and its national response targets
(`emsbench/reference.py`; the shipped defaults are `emsbench/data/population.csv` and
`emsbench/data/response-targets.csv`, and a node may load its own file with the same
columns). Population rows are country × year × region × age band × sex; the age bands are
those of `age_band`. Rows whose figure is not published say `assumed` in their `source`.

| country | year | region | persons | source |
|---|---|---|---|---|
"""

TARGETS = """
Response targets: `share_target` of responses from call received to first unit on scene
within `minutes`.

| country | urgency level | area | minutes | share | source |
|---|---|---|---|---|---|
"""

URGENCY = """
## Urgency crosswalk

`urgency_native` keeps the national code; `urgency_level` is the common level. The mapping
ships with the code (`emsbench/data/urgency-crosswalk.csv`, copied from the shared
reference):

| country | system | code | label | common level |
|---|---|---|---|---|
"""


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def render() -> str:
    ranges = ", ".join(f"{col} {lo}–{hi}" for col, (lo, hi) in model.RANGES.items())
    text = INTRO.format(version=model.MODEL_VERSION, ranges=ranges)
    for kind, rules in (("derived", model.DERIVED), ("completed", model.COMPLETED)):
        for col, sql in rules.items():
            text += f"| `{col}` | {kind} | `{_cell(sql)}` |\n"
    text += COLUMNS
    for row in model.field_table():
        text += ("| `{column}` | {type} | {required} | {nemsis} | {block} | {description} |\n"
                 .format(**{k: _cell(v) for k, v in row.items()}))
    text += REFERENCE
    persons: dict[tuple[str, int, str], int] = {}
    sources: dict[tuple[str, int, str], set[str]] = {}
    for p in reference.load_population():
        key = (p.country, p.year, p.region)
        persons[key] = persons.get(key, 0) + p.persons
        sources.setdefault(key, set()).add(p.source)
    for (country, year, region), total in persons.items():
        source = "; ".join(sorted(sources[(country, year, region)]))
        text += f"| {country} | {year} | {region} | {total:,} | {_cell(source)} |\n"
    text += TARGETS
    for t in reference.load_response_targets():
        text += (f"| {t.country} | {t.urgency_level} | {t.urbanicity} | {t.minutes:g} | "
                 f"{t.share_target:.0%} | {_cell(t.source)} |\n")
    text += URGENCY
    for c in crosswalk():
        text += (f"| {c.country} | {c.system} | {c.native_code} | {c.native_label} | "
                 f"{c.common_level} |\n")
    return text


def model_elements() -> list[str]:
    """Every NEMSIS element the model names (field ids and code mappings), sorted."""
    found = {model.nemsis(c) for c in model.columns()} - {None}
    for c in model.columns():
        for codes in model.nemsis_codes(c).values():
            found |= {code.split("=")[0] for code in codes}
    return sorted(str(e) for e in found)


def nemsis_extract(elements_json: Path) -> str:
    """The CSV extract of the NEMSIS element list for the model's elements."""
    data = json.loads(elements_json.read_text(encoding="utf-8"))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["element", "name", "code", "label"])
    for element in model_elements():
        if element not in data:
            raise KeyError(f"the model names {element}, which is not in {elements_json}")
        entry = data[element]
        for code, label in entry["codes"] or [("", "")]:
            writer.writerow([element, entry["name"], code, label])
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nemsis", type=Path,
                        help="nemsis-v3.5.1-elements.json: also rewrite the NEMSIS extract")
    args = parser.parse_args(argv)
    if args.nemsis:
        NEMSIS_PATH.write_text(nemsis_extract(args.nemsis), encoding="utf-8")
        sys.stdout.write(f"wrote {NEMSIS_PATH}\n")
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC_PATH}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
