"""Wire model v2: what a node sends to the hub and what the hub signs back, defined once.

Three documents travel in DSSE envelopes, each with its own payload type:

* ``Submission`` (node → hub): a country's aggregates for one period. Its size is bounded by
  the specs (strata × bins), never by the number of rows. Counts are integers; a count that
  disclosure control withheld is ``null`` and its cell is marked ``suppressed``.
* ``Withdrawal`` (node → hub): a signed statement that a country's figures for a period must
  no longer be published.
* ``Receipt`` (hub → node): the hub's signed proof that it stored a document.

Submissions and withdrawals are *revisions* of one period: ``(country, year, catalogue)``
with ``revision`` 1, 2, 3… inside the signed payload. The hub accepts only a revision higher
than every one it holds, so a stale resend or a replayed old envelope can never overwrite a
correction. ``catalogue`` is the SHA-256 of the indicator catalogue the node computed with
(``emsbench.specs.catalogue_sha256``).

Parsing is strict: ``"5"`` or ``28.0`` is not a count, unknown fields are refused and times
must carry a UTC offset. What the numbers *mean* (numerator ≤ denominator, no small count,
strata from the spec's code sets) is checked in ``emsbench.conformance``. The JSON Schemas
published in ``emsbench/schema/`` are generated from these classes
(``python -m emsbench.wire``) and a test keeps them equal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Minor versions add to the model and never change what an earlier one meant, so a hub reads
# every 2.x document; the published schema files are named by the major version.
WIRE_VERSION = "2.2"
WIRE_MAJOR = WIRE_VERSION.split(".")[0]
SCHEMA_DIR = Path(__file__).parent / "schema"
SCHEMA_PATH = SCHEMA_DIR / f"submission-v{WIRE_MAJOR}.json"

SUBMISSION_TYPE = "application/vnd.emsbench.submission+json"
WITHDRAWAL_TYPE = "application/vnd.emsbench.withdrawal+json"
RECEIPT_TYPE = "application/vnd.emsbench.receipt+json"

# The largest integer JSON carries exactly everywhere (2**53 − 1). The federation's own,
# much lower, plausibility bound is hub policy (``Policy.max_count``).
MAX_JSON_INT = 2**53 - 1
NonNegative = Annotated[int, Field(ge=0, le=MAX_JSON_INT)]
Count = NonNegative | None
BinRun = tuple[NonNegative, NonNegative, NonNegative]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
DocumentId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
ShortText = Annotated[str, Field(max_length=200)]
ReasonCode = Annotated[str, Field(max_length=100, pattern=r"^[a-z_]+(:[a-z0-9_]+)?$")]
QuantileKey = Annotated[str, Field(pattern=r"^0\.[0-9]{1,3}$")]
FiniteValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]
INDICATOR_TYPES = ("share", "distribution", "rate", "ratio")
IndicatorType = Literal["share", "distribution", "rate", "ratio"]
MAX_REVISION = 1_000_000
Revision = Annotated[int, Field(ge=1, le=MAX_REVISION)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Cell(_Strict):
    """One stratum of one indicator."""

    stratum: dict[ShortText, ShortText] = Field(
        default_factory=dict, description="Stratum key → value; empty for the whole country")
    numerator: Count = Field(None, description="Share indicators: cases in the numerator")
    denominator: Count = Field(None, description="Share indicators: population size")
    bins: list[BinRun] | None = Field(
        None, max_length=10_000,
        description="Distribution indicators: runs [first_bin, last_bin, count] over the "
                    "spec's fixed bins (the last bin open-ended), ascending and disjoint. "
                    "A run wider than one bin is a coarsened span: disclosure control "
                    "joined neighbouring bins until the count reached the threshold")
    quantiles: dict[QuantileKey, FiniteValue] | None = Field(
        None, max_length=10,
        description="Distribution indicators (wire 2.1): exact quantiles of the cell's "
                    "values at the node (Hyndman–Fan type 7), keyed by probability, for a "
                    "cell with at least the disclosure threshold of cases")
    suppressed: bool = Field(False, description="The cell was withheld (counts are null)")


class IndicatorResult(_Strict):
    spec_id: ShortText
    spec_version: ShortText
    spec_sha256: Sha256
    type: IndicatorType
    strata: list[ShortText] = Field(max_length=10)
    cells: list[Cell] = Field(max_length=10_000)

    @model_validator(mode="after")
    def _cells_match_type(self) -> IndicatorResult:
        for cell in self.cells:
            if set(cell.stratum) != set(self.strata):
                raise ValueError(f"{self.spec_id}: cell stratum keys {sorted(cell.stratum)} "
                                 f"differ from strata {self.strata}")
        from emsbench.kinds import kind_of  # local: kinds build on this module

        kind = kind_of(self.type)
        for cell in self.cells:
            problem = kind.wire_problem(cell)
            if problem:
                raise ValueError(f"{self.spec_id}: {problem}")
        return self


class DataQuality(_Strict):
    rows_read: Count
    rows_accepted: Count
    rejected_by_reason: dict[ReasonCode, Count] = Field(
        default_factory=dict, max_length=500,
        description="Rejected rows by first failing check")


class DataSource(_Strict):
    """What the figures were computed from, in the node operator's words, for the report's
    data sources and its synthetic-data banner. The hub cannot check it, so it only ever
    adds a caveat: a source declared synthetic marks the whole report as synthetic."""

    format: ShortText = Field(description="The node's input format, e.g. national-no, nemsis")
    description: str = Field("", max_length=300, description="The register or system the "
                             "data come from, e.g. 'Norwegian ambulance journal records'")
    synthetic: bool = Field(description="True when the rows are synthetic (made up), not "
                                        "real patients")


class Period(_Strict):
    year: int = Field(ge=1900, le=2999, description="Reporting year; the hub's policy "
                                                    "narrows the years it accepts")


class _Revision(_Strict):
    """What every revision of a period carries: who, which period, which catalogue, which
    revision, when."""

    # 2: shares and distributions; 2.1: kinds rate and ratio, exact quantiles in
    # distribution cells; 2.2: a submission says what its data source is (``source``).
    # The default is WIRE_VERSION (a Literal needs it spelled out).
    wire_version: Literal["2", "2.1", "2.2"] = "2.2"
    submission_id: DocumentId
    country: CountryCode
    period: Period
    catalogue: Sha256 = Field(description="SHA-256 of the indicator catalogue release")
    revision: Revision = Field(description="1 for the first submission of this country, "
                                           "year and catalogue; each correction is higher")
    created_at: AwareDatetime

    def to_bytes(self) -> bytes:
        """The exact payload bytes that get signed."""
        return self.model_dump_json().encode("utf-8")


class Submission(_Revision):
    """A country's signed aggregates for one period."""

    software_version: ShortText
    model_version: ShortText
    disclosure_threshold: int = Field(ge=1, le=1_000_000)
    data_quality: DataQuality
    indicators: list[IndicatorResult] = Field(max_length=1000)
    source: DataSource | None = Field(None, description="Since wire 2.2: the data source")

    @classmethod
    def from_bytes(cls, data: bytes) -> Submission:
        return cls.model_validate_json(data)


class Withdrawal(_Revision):
    """A country's signed withdrawal of its figures for one period (a revision with no
    data: a later, higher revision may publish figures again)."""

    reason: str = Field(min_length=3, max_length=500)

    @classmethod
    def from_bytes(cls, data: bytes) -> Withdrawal:
        return cls.model_validate_json(data)


Document = Submission | Withdrawal
PAYLOAD_MODELS: dict[str, type[Submission] | type[Withdrawal]] = {
    SUBMISSION_TYPE: Submission, WITHDRAWAL_TYPE: Withdrawal}


def kind_of(doc: Document) -> Literal["submission", "withdrawal"]:
    return "withdrawal" if isinstance(doc, Withdrawal) else "submission"


class Receipt(_Strict):
    """The hub's signed proof that it stored a submission or withdrawal."""

    receipt_version: Literal["1"] = "1"
    status: Literal["accepted"] = "accepted"
    kind: Literal["submission", "withdrawal"]
    submission_id: DocumentId
    country: CountryCode
    year: int
    catalogue: Sha256
    revision: Revision
    payload_sha256: Sha256
    received_at: AwareDatetime
    hub_version: ShortText
    audit_seq: int = Field(ge=1, description="Sequence number of the hub audit entry")
    audit_hash: Sha256 = Field(description="Hash of that audit entry in the hub's chain")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def _schema(model: type[BaseModel], name: str) -> dict[str, object]:
    schema = model.model_json_schema()
    schema["$id"] = f"https://emsbench.org/schema/{name}"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def published_schemas() -> dict[Path, str]:
    """Every published schema file and its text."""
    out = {}
    for model, stem in ((Submission, "submission"), (Withdrawal, "withdrawal"),
                        (Receipt, "receipt")):
        path = SCHEMA_DIR / f"{stem}-v{WIRE_MAJOR}.json"
        out[path] = json.dumps(_schema(model, path.name), indent=2, sort_keys=True) + "\n"
    return out


def json_schema_text() -> str:
    return published_schemas()[SCHEMA_PATH]


if __name__ == "__main__":  # regenerate the published schemas
    for target, text in published_schemas().items():
        target.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {target}\n")
