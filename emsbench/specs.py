"""Indicator specification model: load, validate (schema, then semantics) and hash specs.

A spec is one YAML file in ``indicator_specs/`` named after its id. Validation runs in two
stages, as MetricFlow does: the schema stage (pydantic) reports every structural problem of
every file; only files that pass it go to the semantic stage (id matches file name, the
fields a type needs, strata are code-set columns of the model, every SQL expression is in
the closed spec language of ``emsbench.spec_language`` and runs on the common model, test
cases use known columns and strata). All problems are
collected and raised together in one ``SpecError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emsbench import model
from emsbench.spec_language import expression_problems

ID_PATTERN = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$"


class SpecError(ValueError):
    """One or more specs are invalid; ``problems`` lists every one."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in indicator specs:\n  - "
                         + "\n  - ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bins(_Strict):
    """Fixed bins: [start + i·width, start + (i+1)·width) for i < count, then one open bin."""

    start: float = 0.0
    width: float = Field(gt=0)
    count: int = Field(gt=0, le=2000)

    def edges(self) -> list[float]:
        return [self.start + i * self.width for i in range(self.count + 1)]

    @property
    def n_bins(self) -> int:
        return self.count + 1


class ExpectedCell(_Strict):
    stratum: dict[str, str] = Field(default_factory=dict)
    numerator: int | None = None
    denominator: int | None = None
    bins: dict[int, int] | None = Field(None, description="Sparse bin index → count")


class SpecTestCase(_Strict):
    name: str
    rows: list[dict[str, Any]]
    expect: list[ExpectedCell]


class IndicatorSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str = Field(min_length=3)
    description: str = Field(min_length=10)
    unit: Literal["percent", "minutes", "per_100k"]
    direction: Literal["higher_is_better", "lower_is_better", "descriptive"]
    type: Literal["share", "distribution"]
    population: str = Field(min_length=1, description="SQL boolean over table missions")
    numerator: str | None = Field(None, description="share: SQL boolean, case counts")
    measure: str | None = Field(None, description="distribution: SQL numeric value per case")
    bins: Bins | None = None
    quantile: float | None = Field(None, gt=0, lt=1)
    strata: list[str] = Field(default_factory=list)
    tests: list[SpecTestCase] = Field(min_length=1)

    @cached_property
    def sha256(self) -> str:
        """Content hash of the definition (tests excluded): node and hub must agree on it."""
        body = self.model_dump(mode="json", exclude={"tests"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def expressions(self) -> dict[str, str]:
        out = {"population": self.population}
        if self.numerator is not None:
            out["numerator"] = self.numerator
        if self.measure is not None:
            out["measure"] = self.measure
        return out


def catalogue_sha256(specs: Iterable[IndicatorSpec]) -> str:
    """The release id of a catalogue: SHA-256 over its specs' ids and definition hashes.

    Node and hub compare it first; a submission says which catalogue it was computed with,
    and revision numbers count within one (country, year, catalogue).
    """
    body = "\n".join(sorted(f"{s.id} {s.version} {s.sha256}" for s in specs))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def stratum_values(column: str) -> tuple[str, ...]:
    """Every value a stratum on ``column`` can take: its code set and ``unknown`` (missing).

    Strata come only from columns with a closed code set, so every possible cell is known in
    advance and no identifier or timestamp can become a stratum label.
    """
    codes = model.ENUMS.get(column)
    if codes is None:
        raise KeyError(f"{column!r} has no closed code set")
    return (*codes, "unknown") if "unknown" not in codes else codes


def default_spec_dir() -> Path:
    import indicator_specs

    return Path(indicator_specs.__file__).parent


def _schema_stage(path: Path) -> tuple[IndicatorSpec | None, list[str]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return None, [f"{path.name}: cannot read YAML: {exc}"]
    if not isinstance(data, dict):
        return None, [f"{path.name}: the file must hold a mapping"]
    try:
        return IndicatorSpec.model_validate(data), []
    except ValidationError as exc:
        return None, [f"{path.name}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                      for e in exc.errors()]


def statement_count(sql: str) -> int:
    """How many SQL statements ``sql`` holds (1 when it does not parse: the dry run reports
    the parse error with DuckDB's own message)."""
    try:
        return len(duckdb.extract_statements(sql))
    except duckdb.Error:
        return 1


def _semantic_stage(path: Path, spec: IndicatorSpec, con: duckdb.DuckDBPyConnection) -> list[str]:
    p: list[str] = []
    where = path.name
    if path.stem != spec.id:
        p.append(f"{where}: id {spec.id!r} must equal the file name {path.stem!r}")
    if spec.type == "share":
        if spec.numerator is None:
            p.append(f"{where}: a share spec needs 'numerator'")
        for extra in ("measure", "bins", "quantile"):
            if getattr(spec, extra) is not None:
                p.append(f"{where}: a share spec takes no {extra!r}")
    else:
        for need in ("measure", "bins", "quantile"):
            if getattr(spec, need) is None:
                p.append(f"{where}: a distribution spec needs {need!r}")
        if spec.numerator is not None:
            p.append(f"{where}: a distribution spec takes no 'numerator'")
    columns = set(model.columns())
    for s in spec.strata:
        if s not in columns:
            p.append(f"{where}: stratum {s!r} is not a column of the common model")
        elif s not in model.ENUMS:
            p.append(f"{where}: stratum {s!r} has no closed code set; strata must come "
                     f"from code-set columns ({', '.join(sorted(model.ENUMS))})")
    if len(set(spec.strata)) != len(spec.strata):
        p.append(f"{where}: strata repeat a column")
    for name, expr in spec.expressions().items():
        refused = expression_problems(expr)
        if refused:
            shown = " ".join(expr.split())
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            p += [f"{where}: {name} `{shown}`: {problem}" for problem in refused]
            continue
        try:
            con.execute(f"SELECT ({expr}) FROM missions LIMIT 0").fetchall()
        except duckdb.PermissionException as exc:
            first = str(exc).splitlines()[0]
            p.append(f"{where}: {name} is refused by the sandbox (spec SQL may not touch "
                     f"files, network or extensions): {first}")
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            p.append(f"{where}: {name} does not run on the common model: {first}")
    for case in spec.tests:
        for i, row in enumerate(case.rows):
            unknown = sorted(set(row) - columns)
            if unknown:
                p.append(f"{where}: test {case.name!r} row {i}: unknown columns {unknown}")
        for cell in case.expect:
            if set(cell.stratum) != set(spec.strata):
                p.append(f"{where}: test {case.name!r}: expected stratum keys "
                         f"{sorted(cell.stratum)} differ from strata {spec.strata}")
            if spec.type == "share" and (cell.numerator is None or cell.denominator is None):
                p.append(f"{where}: test {case.name!r}: a share expectation needs "
                         "numerator and denominator")
            if spec.type == "distribution" and cell.bins is None:
                p.append(f"{where}: test {case.name!r}: a distribution expectation needs bins")
    return p


def validate_files(paths: Iterable[Path]) -> list[IndicatorSpec]:
    """Load and validate spec files; raise SpecError listing every problem found."""
    from emsbench.sandbox import open_sandbox  # local: sandbox imports model only

    paths = sorted(paths)
    problems: list[str] = []
    loaded: list[tuple[Path, IndicatorSpec]] = []
    for path in paths:
        spec, errs = _schema_stage(path)
        problems += errs
        if spec is not None:
            loaded.append((path, spec))
    con = open_sandbox()
    try:
        for path, spec in loaded:
            problems += _semantic_stage(path, spec, con)
    finally:
        con.close()
    ids = [s.id for _, s in loaded]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"spec id {dup!r} is defined more than once")
    if problems:
        raise SpecError(problems)
    return [s for _, s in loaded]


def load_specs(spec_dir: Path | None = None, only: Iterable[str] | None = None
               ) -> list[IndicatorSpec]:
    """Every spec in ``spec_dir`` (default: the packaged ``indicator_specs``), validated."""
    directory = spec_dir or default_spec_dir()
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise SpecError([f"no *.yaml indicator specs in {directory}"])
    specs = validate_files(paths)
    if only is not None:
        wanted = set(only)
        missing = wanted - {s.id for s in specs}
        if missing:
            raise SpecError([f"unknown indicator id {m!r}" for m in sorted(missing)])
        specs = [s for s in specs if s.id in wanted]
    return specs
