"""Writes ``docs/information-model.md`` from the model, so the document cannot drift.

Run ``python -m emsbench.model_doc`` after changing ``emsbench.model``; a test checks the
committed document equals what this module writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from emsbench import model
from emsbench.crosswalk import crosswalk

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "information-model.md"

INTRO = """\
# Common information model v{version}

One row per ambulance mission (an incident response by the first unit), the same in every
country. Nodes map their national data to this model before anything is computed; indicator
specs are DuckDB SQL over a table `missions` with exactly these columns.

- Defined once in code: `emsbench/model.py` (pydantic class `Mission`). The Arrow schema
  (`model.arrow_schema()`), the DuckDB types used to validate input and this document are all
  derived from it. Regenerate this file with `python -m emsbench.model_doc`.
- Timestamps are local time of the dispatch centre, without time zone.
- The clinical blocks are prefixed columns: `ca_` cardiac arrest (Utstein items), `stemi_`,
  `stroke_`. They are empty (NULL) for missions outside the block.
- **NEMSIS** gives the NEMSIS v3.5.1 element that the field corresponds to (the US input
  adapter maps from it); an empty cell means NEMSIS has no such element.
- Required columns must be present and non-empty; every other column may be missing from
  an input file (it is then NULL for all rows).

## Validation at the node

Every row gets the first check it fails, in this order, and is then rejected and counted
under that reason in the submission's `data_quality.rejected_by_reason`:

1. `missing:<column>`: a required column is empty;
2. `unparseable:<column>`: a value does not convert to the column's type (CSV input);
3. `invalid_code:<column>`: a value outside the column's code set;
4. `out_of_range:<column>`: a number outside its range (age 0–120);
5. `outside_period`: the call was not received in the reporting year.

Missing or inconsistent times do not reject a row: each indicator's population says which
rows it needs (for example, response time excludes missing and negative intervals).

## Columns

| column | type | required | NEMSIS | block | description |
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


def render() -> str:
    text = INTRO.format(version=model.MODEL_VERSION)
    for row in model.field_table():
        text += ("| `{column}` | {type} | {required} | {nemsis} | {block} | {description} |\n"
                 .format(**{k: v.replace("|", "\\|") for k, v in row.items()}))
    text += URGENCY
    for c in crosswalk():
        text += (f"| {c.country} | {c.system} | {c.native_code} | {c.native_label} | "
                 f"{c.common_level} |\n")
    return text


if __name__ == "__main__":
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC_PATH}\n")
