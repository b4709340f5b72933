"""Indicator specification model: load, validate (schema, then semantics) and hash specs.

A spec is one YAML file in ``indicator_specs/`` named after its id. Validation runs in two
stages, as MetricFlow does: the schema stage (pydantic) reports every structural problem of
every file; only files that pass it go to the semantic stage (id matches file name, the
fields a type needs, strata are code-set columns of the model, every SQL expression is in
the closed spec language of ``emsbench.spec_language`` and runs on the common model, test
cases use known columns and strata). All problems are
collected and raised together in one ``SpecError``; each is also a ``Problem`` with the
file and the YAML line it is on (``YamlLines``), and a misspelt column or field gets a
"did you mean" from the model (``did_you_mean``). ``emsbench specs validate`` prints them.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from emsbench import model
from emsbench.spec_language import expression_problems, normal_form

ID_PATTERN = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$"


Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One problem of one spec file, with the (1-based) line it is on when known."""

    file: str
    line: int | None
    message: str
    path: Path | None = None

    def __str__(self) -> str:
        """``FILE:LINE: message``, as compilers and editors write it."""
        return (f"{self.file}:{self.line}: {self.message}" if self.line
                else f"{self.file}: {self.message}" if self.file else self.message)

    @property
    def text(self) -> str:
        """``FILE: message`` (no line), the form of ``SpecError.problems``."""
        return f"{self.file}: {self.message}" if self.file else self.message


class SpecError(ValueError):
    """One or more specs are invalid; ``problems`` lists every one.

    ``located`` holds the same problems with file and line (``Problem``; ``str`` gives
    ``FILE:LINE: message``), for ``emsbench specs validate``.
    """

    def __init__(self, problems: list[str], located: Sequence[Problem] | None = None):
        self.problems = problems
        self.located = list(located) if located is not None else [
            Problem("", None, p) for p in problems]
        super().__init__(f"{len(problems)} problem(s) in indicator specs:\n  - "
                         + "\n  - ".join(problems))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices`` to a misspelt ``name``, or
    nothing when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def loc_text(loc: Iterable[str | int]) -> str:
    """A location in a spec as its author reads it: ``tests[0].rows[2].patient_age``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# libyaml's loader where PyYAML has it (about ten times faster than the Python one); both
# construct only plain data.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLines:
    """Line numbers (1-based) of the keys and list items of one YAML document.

    ``line(("tests", 0, "rows", 2, "patient_age"))`` is the line of that key; a location
    that does not exist (a missing field) gives the line of the deepest part that does.
    """

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines()

    @cached_property
    def root(self) -> yaml.Node | None:
        # Composed only when a problem needs its line: a valid catalogue never pays for a
        # second parse (loading the specs is part of every node run's fixed cost).
        try:
            return yaml.compose(self.text, Loader=SAFE_LOADER)
        except yaml.YAMLError:
            return None

    def _walk(self, loc: Iterable[str | int]) -> tuple[yaml.Node | None, int, bool]:
        node = self.root
        if node is None:
            return None, 1, False
        line = node.start_mark.line + 1
        for part in loc:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        line, child = key.start_mark.line + 1, value
                        break
            elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
                  and 0 <= part < len(node.value)):
                child = node.value[part]
                line = child.start_mark.line + 1
            if child is None:
                return node, line, False
            node = child
        return node, line, True

    def line(self, loc: Iterable[str | int], needle: str | None = None) -> int:
        """The line of ``loc``; with ``needle``, the first line of a multi-line value that
        holds it as a word (e.g. a misspelt column inside a folded SQL expression)."""
        node, line, found = self._walk(loc)
        if found and needle and isinstance(node, yaml.ScalarNode):
            word = re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)", re.IGNORECASE)
            first, last = node.start_mark.line, node.end_mark.line
            for i in range(first, min(last, len(self.lines) - 1) + 1):
                text = self.lines[i][node.start_mark.column:] if i == first else self.lines[i]
                if word.search(text):
                    return i + 1
        return line


def _needle(message: str) -> str | None:
    """What to look for in an expression to find the line a language problem is on."""
    for pattern in (r"^'([^']+)' is", r"the function (\w+)\(\)", r"cast to (\w+)"):
        m = re.search(pattern, message)
        if m:
            return m.group(1).split(".")[-1]
    return "select" if message.startswith("a subquery") else None


def _column_hint(message: str) -> str:
    m = re.match(r"^'([^']+)' is not a column of the common model", message)
    return did_you_mean(m.group(1).split(".")[-1], model.columns()) if m else ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Strict):
    """From ``from`` on, a band every ``every`` (both in the measure's unit) up to the next
    ``from``, or up to the upper edge of the last closed bin."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: float = Field(alias="from")
    every: float = Field(gt=0)


class Bins(_Strict):
    """Fixed bins: [start + i·width, start + (i+1)·width) for i < count, then one open bin.

    ``bands`` declares the lattice disclosure control may cut a histogram at, as steps:
    ``[{from: 0, every: 1}, {from: 3, every: 0.25}, {from: 90, every: 5}]`` is a band edge
    every minute from 0, every 15 s from 3 min and every 5 min from 90 min up to the last
    closed bin's upper edge; the open bin is always a band of its own. Each ``from`` is a
    bin edge (the first one ``start``), each ``every`` a whole number of bins, and each step
    a whole number of bands. The node joins whole bands, never parts of one, so every run
    of a released histogram starts at a band edge and ends just before one (or at the open
    bin), wherever the data lie. Without ``bands`` every bin edge is a band edge (the
    lattice is the bins themselves): that is how specs released before the field existed
    are read, and their fingerprints do not change (``IndicatorSpec.sha256`` leaves an
    absent lattice out).
    """

    start: float = 0.0
    width: float = Field(gt=0)
    count: int = Field(gt=0, le=2000)
    bands: list[Band] | None = Field(
        None, min_length=1, max_length=100,
        description="steps of the band-edge lattice that coarsened runs start and end on; "
                    "absent: every bin edge")

    def edges(self) -> list[float]:
        return [self.start + i * self.width for i in range(self.count + 1)]

    @property
    def n_bins(self) -> int:
        return self.count + 1

    def edge_index(self, value: float) -> int | None:
        """The bin edge ``value`` is (0 … count), allowing for the rounding of decimal
        writing (a millionth of a bin); None when it is no bin edge."""
        i = round((value - self.start) / self.width)
        if 0 <= i <= self.count and abs(self.start + i * self.width - value) <= 1e-6 * self.width:
            return i
        return None

    def _bins_in(self, length: float) -> int | None:
        """``length`` as a whole number of bins, or None."""
        k = round(length / self.width)
        return k if k >= 1 and abs(k * self.width - length) <= 1e-6 * self.width else None

    @model_validator(mode="after")
    def _bands_on_bin_edges(self) -> Bins:
        if self.bands is None:
            return self
        firsts: list[int] = []
        for band in self.bands:
            i = self.edge_index(band.from_)
            if i is None or i >= self.count:
                raise ValueError(f"bands: from {band.from_:g} is not a bin edge below the "
                                 f"open bin (start + i·width for i from 0 to {self.count - 1})")
            if firsts and i <= firsts[-1]:
                raise ValueError(f"bands: from {band.from_:g} does not ascend")
            if not firsts and i != 0:
                raise ValueError(f"bands: the first step must be from the bins' start "
                                 f"{self.start:g}, not {band.from_:g}")
            if self._bins_in(band.every) is None:
                raise ValueError(f"bands: every {band.every:g} is not a whole number of "
                                 f"{self.width:g}-wide bins")
            firsts.append(i)
        for band, i, j in zip(self.bands, firsts, [*firsts[1:], self.count], strict=True):
            if (j - i) % (self._bins_in(band.every) or 1):
                raise ValueError(f"bands: from {band.from_:g} to "
                                 f"{self.start + j * self.width:g} is not a whole number of "
                                 f"bands of {band.every:g}")
        return self

    @cached_property
    def band_starts(self) -> tuple[int, ...]:
        """The lattice as bin indices: the first bin of every band, ascending, from 0 to the
        open bin (``count``)."""
        if self.bands is None:
            return tuple(range(self.n_bins))
        starts = {self.count}
        firsts = [self.edge_index(b.from_) or 0 for b in self.bands]
        for band, i, j in zip(self.bands, firsts, [*firsts[1:], self.count], strict=True):
            starts.update(range(i, j, self._bins_in(band.every) or 1))
        return tuple(sorted(starts))


class ExpectedCell(_Strict):
    stratum: dict[str, str] = Field(default_factory=dict)
    numerator: int | None = None
    denominator: int | None = None
    bins: dict[int, int] | None = Field(None, description="Sparse bin index → count")


class CasePopulation(_Strict):
    """Persons of one age band and sex, as the official population gives them."""

    age_band: model.AgeBand
    sex: Literal["female", "male"]
    persons: int = Field(ge=0)


class SpecTestCase(_Strict):
    name: str
    rows: list[dict[str, Any]]
    expect: list[ExpectedCell]
    population: list[CasePopulation] | None = Field(
        None, description="rate: the official population the case divides by, rows "
                          "{age_band, sex, persons}; an age band and sex left out has 0")

    def population_by(self) -> dict[tuple[str, str], int] | None:
        """The case's population as ``Context.population``: persons by (age band, sex)."""
        if self.population is None:
            return None
        out: dict[tuple[str, str], int] = {}
        for p in self.population:
            out[(p.age_band, p.sex)] = out.get((p.age_band, p.sex), 0) + p.persons
        return out


class IndicatorSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str = Field(min_length=3)
    description: str = Field(min_length=10)
    unit: Literal["percent", "minutes", "per_1000", "per_100k", "ratio"]
    direction: Literal["higher_is_better", "lower_is_better", "descriptive"]
    type: Literal["share", "distribution", "rate", "ratio"]
    population: str = Field(min_length=1, description="SQL boolean over table missions")
    numerator: str | None = Field(None, description="share: SQL boolean, case counts")
    measure: str | None = Field(None, description="distribution: SQL numeric value per case")
    bins: Bins | None = None
    quantile: float | None = Field(None, gt=0, lt=1)
    adjust_for: dict[str, str] | None = Field(
        None, description="ratio: case-mix strata for indirect standardisation, name → a "
                          "code-set column or an SQL boolean over table missions")
    strata: list[str] = Field(default_factory=list)
    tests: list[SpecTestCase] = Field(min_length=1)

    @cached_property
    def sha256(self) -> str:
        """The spec's fingerprint: a hash of its normalised definition (tests excluded;
        expressions in ``spec_language.normal_form``, so re-wrapping or re-casing the SQL,
        or YAML layout and comments, never change it). Node and hub must agree on it."""
        body = self.model_dump(mode="json", exclude={"tests"})
        for later in ("adjust_for",):  # fields added later leave earlier fingerprints alone
            if body.get(later) is None:
                body.pop(later, None)
        if body.get("bins") is not None:  # a lattice not declared leaves them alone too
            bands = body["bins"].pop("bands", None)
            if bands is not None:
                body["bins"]["bands"] = [{"from": b["from_"], "every": b["every"]}
                                         for b in bands]
        for name in ("population", "numerator", "measure"):
            if body.get(name) is not None:
                body[name] = normal_form(body[name])
        if body.get("adjust_for") is not None:
            body["adjust_for"] = {k: normal_form(v) for k, v in body["adjust_for"].items()}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def cell_strata(self) -> list[str]:
        """The keys of a cell's stratum: the reporting ``strata``, then the case-mix strata
        of ``adjust_for`` (a ratio's cells split each reporting group by case mix)."""
        return [*self.strata, *(self.adjust_for or {})]

    def expressions(self) -> dict[str, str]:
        out = {"population": self.population}
        if self.numerator is not None:
            out["numerator"] = self.numerator
        if self.measure is not None:
            out["measure"] = self.measure
        for name, expr in (self.adjust_for or {}).items():
            out[f"adjust_for.{name}"] = expr
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


def stratum_grid(strata: Sequence[str]) -> list[tuple[str, ...]]:
    """Every stratum a spec with ``strata`` can have, in code-set order: the full grid a
    node sends, empty cells included, so that no cell's presence says it holds cases."""
    return list(itertools.product(*(stratum_values(c) for c in strata)))


BOOLEAN_VALUES = ("true", "false", "unknown")


def key_values(spec: IndicatorSpec, key: str) -> tuple[str, ...]:
    """Every value of one key of ``spec.cell_strata``: a stratum's code set and
    ``unknown``; an ``adjust_for`` entry's too when it names a code-set column, else
    ``true``/``false``/``unknown`` (a boolean expression)."""
    adjust = spec.adjust_for or {}
    if key in adjust and key not in spec.strata:
        column = adjust[key].strip()
        return stratum_values(column) if column in model.ENUMS else BOOLEAN_VALUES
    return stratum_values(key)


def spec_grid(spec: IndicatorSpec) -> list[tuple[str, ...]]:
    """Every cell a result of ``spec`` has, keyed in ``spec.cell_strata`` order (the
    ``stratum_grid`` of its strata, times its case-mix strata)."""
    return list(itertools.product(*(key_values(spec, k) for k in spec.cell_strata)))


def default_spec_dir() -> Path:
    import indicator_specs

    return Path(indicator_specs.__file__).parent


def _fields_at(loc: Loc) -> list[str]:
    """The field names the schema allows at a location (for did-you-mean hints)."""
    parts = [p for p in loc if isinstance(p, str)]
    cls: type[BaseModel] = IndicatorSpec
    if parts[:1] == ["bins"]:
        cls = Bins
    elif parts[:2] == ["tests", "expect"]:
        cls = ExpectedCell
    elif parts[:1] == ["tests"]:
        cls = SpecTestCase
    return list(cls.model_fields)


def _schema_stage(path: Path, text: str, lines: YamlLines
                  ) -> tuple[IndicatorSpec | None, list[Problem]]:
    where = path.name
    try:
        try:
            data = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            # Read again by the Python loader, whose messages say more ("mapping values
            # are not allowed here", at the line), so authors see the same in any install.
            data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = " ".join(str(x) for x in (getattr(exc, "context", None),
                                         getattr(exc, "problem", None)) if x) or str(exc)
        return None, [Problem(where, mark.line + 1 if mark else 1,
                              f"cannot read YAML: {what}", path)]
    if not isinstance(data, dict):
        return None, [Problem(where, 1, "the file must hold a mapping", path)]
    try:
        return IndicatorSpec.model_validate(data), []
    except ValidationError as exc:
        out = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            hint = ""
            if e["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
                hint = did_you_mean(loc[-1], _fields_at(loc[:-1]))
            out.append(Problem(where, lines.line(loc), f"{loc_text(loc)}: {e['msg']}{hint}",
                               path))
        return None, out


def statement_count(sql: str) -> int:
    """How many SQL statements ``sql`` holds (1 when it does not parse: the dry run reports
    the parse error with DuckDB's own message)."""
    try:
        return len(duckdb.extract_statements(sql))
    except duckdb.Error:
        return 1


def _semantic_stage(path: Path, spec: IndicatorSpec, con: duckdb.DuckDBPyConnection,
                    at: YamlLines) -> list[Problem]:
    where = path.name
    p: list[Problem] = []

    def add(loc: Loc, message: str, needle: str | None = None) -> None:
        p.append(Problem(where, at.line(loc, needle), message, path))

    if path.stem != spec.id:
        add(("id",), f"id {spec.id!r} must equal the file name {path.stem!r}")
    from emsbench.kinds import kind_of  # local: kinds build on this module

    kind = kind_of(spec)
    for loc, message in kind.spec_problems(spec):
        add(loc, message)
    columns = set(model.columns())
    for i, s in enumerate(spec.strata):
        if s not in columns:
            add(("strata", i), f"stratum {s!r} is not a column of the common model"
                + did_you_mean(s, model.ENUMS))
        elif s not in model.ENUMS:
            add(("strata", i), f"stratum {s!r} has no closed code set; strata must come "
                f"from code-set columns ({', '.join(sorted(model.ENUMS))})")
    if len(set(spec.strata)) != len(spec.strata):
        add(("strata",), "strata repeat a column")
    for name, expr in spec.expressions().items():
        refused = expression_problems(expr)
        if refused:
            shown = " ".join(expr.split())
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            for problem in refused:
                add(tuple(name.split(".")), f"{name} `{shown}`: {problem}{_column_hint(problem)}",
                    _needle(problem))
            continue
        try:
            con.execute(f"SELECT ({expr}) FROM missions LIMIT 0").fetchall()
        except duckdb.PermissionException as exc:
            first = str(exc).splitlines()[0]
            add(tuple(name.split(".")), f"{name} is refused by the sandbox (spec SQL may not touch "
                f"files, network or extensions): {first}")
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            add(tuple(name.split(".")), f"{name} does not run on the common model: {first}")
    for c, case in enumerate(spec.tests):
        for i, row in enumerate(case.rows):
            for col in sorted(set(row) - columns):
                add(("tests", c, "rows", i, col),
                    f"tests[{c}].rows[{i}]: unknown column {col!r}" + did_you_mean(col, columns))
        for k, cell in enumerate(case.expect):
            if set(cell.stratum) != set(spec.cell_strata):
                hints = "".join(did_you_mean(key, spec.cell_strata)
                                for key in sorted(set(cell.stratum) - set(spec.cell_strata)))
                add(("tests", c, "expect", k, "stratum"),
                    f"tests[{c}].expect[{k}]: expected stratum keys {sorted(cell.stratum)} "
                    f"differ from strata {spec.cell_strata}{hints}")
            wrong = kind.expect_problem(spec, cell)
            if wrong:
                add(("tests", c, "expect", k), f"tests[{c}].expect[{k}]: {wrong}")
    return p


def check_files(paths: Iterable[Path]
                ) -> tuple[list[tuple[Path, IndicatorSpec, YamlLines]], list[Problem]]:
    """Both validation stages over ``paths`` without raising: the specs that passed the
    schema stage (with their line maps) and every problem, with file and line."""
    from emsbench.sandbox import open_sandbox  # local: sandbox imports model only

    problems: list[Problem] = []
    loaded: list[tuple[Path, IndicatorSpec, YamlLines]] = []
    for path in sorted(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(path.name, None, f"cannot read YAML: {exc}", path))
            continue
        lines = YamlLines(text)  # composed once, if a problem needs a line
        spec, errs = _schema_stage(path, text, lines)
        problems += errs
        if spec is not None:
            loaded.append((path, spec, lines))
    con = open_sandbox()
    try:
        for path, spec, lines in loaded:
            problems += _semantic_stage(path, spec, con, lines)
    finally:
        con.close()
    first: dict[str, Path] = {}
    for path, spec, lines in loaded:
        if spec.id in first:
            problems.append(Problem(path.name, lines.line(("id",)),
                                    f"spec id {spec.id!r} is defined more than once "
                                    f"(also in {first[spec.id].name})", path))
        else:
            first[spec.id] = path
    return loaded, problems


def validate_files(paths: Iterable[Path]) -> list[IndicatorSpec]:
    """Load and validate spec files; raise SpecError listing every problem found."""
    loaded, problems = check_files(paths)
    if problems:
        raise SpecError([p.text for p in problems], problems)
    return [s for _, s, _ in loaded]


RELEASES_DIR = "releases"


def unbumped_changes(specs: Iterable[IndicatorSpec], releases: Path) -> list[str]:
    """Specs whose meaning changed since a release without a version bump.

    ``releases`` holds the manifests of past releases (``emsbench specs release`` writes
    them; JSON with ``name`` and ``specs: [{id, version, fingerprint}]``). A released
    id and version is a promise: the same fingerprint, or a new version.
    """
    problems = []
    have = {(s.id, s.version): s for s in specs}
    for path in sorted(releases.glob("*.json")) if releases.is_dir() else []:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            entries = [(e["id"], e["version"], e["fingerprint"]) for e in manifest["specs"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path.name}: not a release manifest ({exc})")
            continue
        for sid, version, fingerprint in entries:
            spec = have.get((sid, version))
            if spec is not None and spec.sha256 != fingerprint:
                problems.append(
                    f"{sid}.yaml: version {version} was released in "
                    f"{manifest.get('name', path.stem)} with another definition "
                    f"(fingerprint {fingerprint[:12]}…, now {spec.sha256[:12]}…): a change "
                    "of meaning needs a new version")
    return problems


def load_specs(spec_dir: Path | None = None, only: Iterable[str] | None = None
               ) -> list[IndicatorSpec]:
    """Every spec in ``spec_dir`` (default: the packaged ``indicator_specs``), validated."""
    directory = spec_dir or default_spec_dir()
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise SpecError([f"no *.yaml indicator specs in {directory}"])
    specs = validate_files(paths)
    bumps = unbumped_changes(specs, directory / RELEASES_DIR)
    if bumps:
        raise SpecError(bumps)
    if only is not None:
        wanted = set(only)
        missing = wanted - {s.id for s in specs}
        if missing:
            raise SpecError([f"unknown indicator id {m!r}" for m in sorted(missing)])
        specs = [s for s in specs if s.id in wanted]
    return specs
