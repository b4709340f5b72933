"""Wire model v1: what a node sends to the hub, defined once for both sides.

A submission holds only aggregates whose size is bounded by the specs (strata × bins), never
by the number of rows. Counts are integers; a count that disclosure control withheld is
``null`` and its cell is marked ``suppressed``. The JSON Schema published in
``emsbench/schema/submission-v1.json`` is generated from these classes
(``python -m emsbench.wire``) and a test keeps the two equal.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WIRE_VERSION = "1"
SCHEMA_PATH = Path(__file__).parent / "schema" / f"submission-v{WIRE_VERSION}.json"

Count = int | None
BinRun = tuple[int, int, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cell(_Strict):
    """One stratum of one indicator."""

    stratum: dict[str, str] = Field(
        default_factory=dict, description="Stratum key → value; empty for the whole country")
    numerator: Count = Field(None, ge=0, description="Share indicators: cases in the numerator")
    denominator: Count = Field(None, ge=0, description="Share indicators: population size")
    bins: list[BinRun] | None = Field(
        None, description="Distribution indicators: runs [first_bin, last_bin, count] over the "
                          "spec's fixed bins (the last bin open-ended), ascending and disjoint. "
                          "A run wider than one bin is a coarsened span: disclosure control "
                          "joined neighbouring bins until the count reached the threshold")
    suppressed: bool = Field(False, description="The cell was withheld (counts are null)")


class IndicatorResult(_Strict):
    spec_id: str
    spec_version: str
    spec_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    type: Literal["share", "distribution"]
    strata: list[str]
    cells: list[Cell]

    @model_validator(mode="after")
    def _cells_match_type(self) -> IndicatorResult:
        for cell in self.cells:
            if set(cell.stratum) != set(self.strata):
                raise ValueError(f"{self.spec_id}: cell stratum keys {sorted(cell.stratum)} "
                                 f"differ from strata {self.strata}")
            if self.type == "share" and cell.bins is not None:
                raise ValueError(f"{self.spec_id}: a share cell carries no bins")
            if self.type == "distribution":
                if cell.bins is None and not cell.suppressed:
                    raise ValueError(f"{self.spec_id}: a distribution cell needs bins")
                _check_runs(self.spec_id, cell.bins or [])
        return self


def _check_runs(spec_id: str, runs: list[BinRun]) -> None:
    previous = -1
    for first, last, count in runs:
        if not previous < first <= last or count < 0:
            raise ValueError(f"{spec_id}: bin runs must be ascending, disjoint [first, last, "
                             f"count] with count >= 0; got {[first, last, count]}")
        previous = last


class DataQuality(_Strict):
    rows_read: Count = Field(ge=0)
    rows_accepted: Count = Field(ge=0)
    rejected_by_reason: dict[str, Count] = Field(
        default_factory=dict, description="Rejected rows by first failing check")


class Period(_Strict):
    year: int = Field(ge=1990, le=2100)


class Submission(_Strict):
    """A country's signed aggregates for one period."""

    wire_version: Literal["1"] = "1"  # = WIRE_VERSION; a Literal needs the value spelled out
    submission_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    country: str = Field(pattern=r"^[A-Z]{2}$")
    period: Period
    created_at: datetime
    software_version: str
    model_version: str
    disclosure_threshold: int = Field(ge=1)
    data_quality: DataQuality
    indicators: list[IndicatorResult]

    def to_bytes(self) -> bytes:
        """The exact payload bytes that get signed."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Submission:
        return cls.model_validate_json(data)


def json_schema() -> dict[str, object]:
    schema = Submission.model_json_schema()
    schema["$id"] = f"https://emsbench.org/schema/{SCHEMA_PATH.name}"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # regenerate the published schema
    SCHEMA_PATH.write_text(json_schema_text(), encoding="utf-8")
    sys.stdout.write(f"wrote {SCHEMA_PATH}\n")
