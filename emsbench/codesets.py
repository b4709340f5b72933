"""Code sets and crosswalks as versioned data: load them and check them.

The files live in ``emsbench/data/codesets/`` (CSV, UTF-8). Each starts with comment lines
``# key: value``; ``version`` is required, so a node can say which code tables it mapped
with. The files:

- ``common.csv`` (``codeset,code,label``): the common code sets. Every code set of the
  model (``model.ENUMS``) must be here with exactly the model's codes, plus ``boolean``
  (``true``/``false``), the common side of the national yes/no words.
- ``crosswalk-<cc>.csv`` (``codeset,native_code,common_code,native_label,unmapped_reason``):
  one country's native codes. Each native code maps to exactly one common code of its code
  set, or has an empty ``common_code`` and says why in ``unmapped_reason``. Native codes are
  compared trimmed and case-insensitively (that is how the national adapter matches them),
  so ``K`` and ``k`` are the same code. The first native code listed for a common code is
  the canonical one, the code a national writer exports. The ``urgency_level`` rows must
  agree with the shared urgency crosswalk (``emsbench/data/urgency-crosswalk.csv``): every
  code there, with the same level; a native code it does not list may only be unmapped.
- ``icd10-groups.csv`` (``group,prefix,label,indicators``): the ICD-10 prefixes the
  indicator specs test.
- ``regions.csv`` (``country,region,label``): regions with an official population.

Every problem names file, line and code (``Problem``); ``CodeSetError`` carries them all,
so a broken file is fixed in one round. Pure: no node or hub import.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from emsbench import model
from emsbench.crosswalk import crosswalk as urgency_crosswalk

BOOLEAN = "boolean"
BOOLEAN_CODES: tuple[str, ...] = ("true", "false")
NORDIC: tuple[str, ...] = ("NO", "SE", "DK", "FI", "IS")

_COMMON_HEADER = ["codeset", "code", "label"]
_CROSSWALK_HEADER = ["codeset", "native_code", "common_code", "native_label", "unmapped_reason"]
_ICD_HEADER = ["group", "prefix", "label", "indicators"]
_REGION_HEADER = ["country", "region", "label"]
# An ICD-10 category (letter, two digits), optionally with a subdivision (I21.0, I63.9).
_ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a code-set file, with where it is."""

    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        code = f" {self.code!r}" if self.code else ""
        return f"{self.file}:{self.line}:{code} {self.message}"


class CodeSetError(ValueError):
    """A code-set file is broken; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Mapping:
    """One crosswalk row: a native code and its common code (None: unmapped, with reason)."""

    codeset: str
    native: str
    common: str | None
    label: str
    reason: str
    line: int


@dataclass(frozen=True)
class Crosswalk:
    """One country's crosswalk file, checked."""

    country: str
    version: str
    file: str
    rows: tuple[Mapping, ...]

    def codesets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.codeset for r in self.rows))

    def mapping(self, codeset: str) -> dict[str, str | None]:
        """Native code (as written in the file) → common code, or None for unmapped."""
        return {r.native: r.common for r in self.rows if r.codeset == codeset}

    def canonical(self, codeset: str) -> dict[str, str]:
        """Common code → the native code a writer exports (the first one listed)."""
        out: dict[str, str] = {}
        for r in self.rows:
            if r.codeset == codeset and r.common is not None:
                out.setdefault(r.common, r.native)
        return out


@dataclass(frozen=True)
class CommonCodes:
    """The common code sets (``common.csv``), checked against the model."""

    version: str
    codes: dict[str, tuple[str, ...]]
    labels: dict[tuple[str, str], str]


@dataclass(frozen=True)
class Icd10Group:
    group: str
    prefix: str
    label: str
    indicators: tuple[str, ...]


def folder() -> Path:
    """The packaged code-set folder."""
    return Path(str(resources.files("emsbench").joinpath("data/codesets")))


def _rows(path: Path, header: list[str], problems: list[Problem]
          ) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]]]:
    """Comment metadata and (line, row) pairs of a code-set CSV; problems appended."""
    meta: dict[str, str] = {}
    lines = path.read_text("utf-8").splitlines()
    body_start = 0
    for i, text in enumerate(lines):
        if not text.startswith("#"):
            body_start = i
            break
        key, sep, value = text[1:].partition(":")
        # only "# key: value" with a one-word key is metadata; other comments are prose
        if sep and key.strip().isidentifier():
            meta.setdefault(key.strip(), value.strip())
    else:
        body_start = len(lines)
    if not meta.get("version"):
        problems.append(Problem(path.name, 1, "", "no '# version: ...' line before the header"))
    reader = csv.reader(lines[body_start:])
    found = next(reader, None)
    if found != header:
        problems.append(Problem(path.name, body_start + 1, "",
                                f"header must be {','.join(header)}, not "
                                f"{','.join(found or [])}"))
        return meta, []
    out: list[tuple[int, dict[str, str]]] = []
    for offset, values in enumerate(reader, start=body_start + 2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(Problem(path.name, offset, values[0] if values else "",
                                    f"{len(values)} fields, expected {len(header)}"))
            continue
        out.append((offset, {k: v.strip() for k, v in zip(header, values, strict=True)}))
    return meta, out


def _fold(code: str) -> str:
    """How a native code is compared: trimmed, case-insensitive (as DuckDB lower())."""
    return code.strip().lower()


def load_common(where: Path | None = None) -> CommonCodes:
    """``common.csv``, checked: each model code set exactly, plus ``boolean``."""
    path = (where or folder()) / "common.csv"
    problems: list[Problem] = []
    meta, rows = _rows(path, _COMMON_HEADER, problems)
    codes: dict[str, list[str]] = {}
    labels: dict[tuple[str, str], str] = {}
    first_line: dict[str, int] = {}
    expected = {**model.ENUMS, BOOLEAN: BOOLEAN_CODES}
    for line, row in rows:
        cs, code = row["codeset"], row["code"]
        first_line.setdefault(cs, line)
        if cs not in expected:
            problems.append(Problem(path.name, line, code,
                                    f"code set {cs!r} is not a code set of the model"))
        elif code not in expected[cs]:
            problems.append(Problem(path.name, line, code,
                                    f"not a code of {cs} in the model ({', '.join(expected[cs])})"))
        if code in codes.get(cs, []):
            problems.append(Problem(path.name, line, code, f"listed twice in {cs}"))
        codes.setdefault(cs, []).append(code)
        labels[(cs, code)] = row["label"]
    for cs, wanted in expected.items():
        for code in wanted:
            if code not in codes.get(cs, []):
                problems.append(Problem(path.name, first_line.get(cs, 0), code,
                                        f"model code of {cs} missing from the file"))
    if problems:
        raise CodeSetError(problems)
    return CommonCodes(meta["version"], {k: tuple(v) for k, v in codes.items()}, labels)


def check_crosswalk(path: Path, country: str, common: CommonCodes
                    ) -> tuple[Crosswalk | None, list[Problem]]:
    """A crosswalk file and every problem in it (the crosswalk is None when there are any)."""
    problems: list[Problem] = []
    meta, rows = _rows(path, _CROSSWALK_HEADER, problems)
    if meta.get("country", country) != country:
        problems.append(Problem(path.name, 1, meta["country"],
                                f"file says country {meta['country']}, expected {country}"))
    seen: dict[tuple[str, str], int] = {}
    mappings: list[Mapping] = []
    for line, row in rows:
        cs, native, target = row["codeset"], row["native_code"], row["common_code"]
        reason = row["unmapped_reason"]
        if cs not in common.codes:
            problems.append(Problem(path.name, line, native, f"unknown code set {cs!r}"))
            continue
        if not native:
            problems.append(Problem(path.name, line, "", f"empty native code in {cs}"))
            continue
        key = (cs, _fold(native))
        if key in seen:
            problems.append(Problem(path.name, line, native,
                                    f"duplicate native code in {cs} (first on line "
                                    f"{seen[key]}; codes are compared case-insensitively)"))
            continue
        seen[key] = line
        if target and target not in common.codes[cs]:
            problems.append(Problem(path.name, line, native,
                                    f"maps to {target!r}, not a common code of {cs} "
                                    f"({', '.join(common.codes[cs])})"))
            continue
        if target and reason:
            problems.append(Problem(path.name, line, native,
                                    "has both a common code and an unmapped_reason"))
            continue
        if not target and not reason:
            problems.append(Problem(path.name, line, native,
                                    f"neither mapped to a common code of {cs} nor listed as "
                                    "unmapped (give an unmapped_reason)"))
            continue
        mappings.append(Mapping(cs, native, target or None, row["native_label"], reason, line))
    problems += _check_urgency(path.name, country, mappings, rows)
    if problems:
        return None, problems
    return Crosswalk(country, meta["version"], path.name, tuple(mappings)), []


def _check_urgency(name: str, country: str, mappings: list[Mapping],
                   rows: list[tuple[int, dict[str, str]]]) -> list[Problem]:
    """The urgency rows must agree with the shared urgency crosswalk, which stays the one
    source of the national → U1/U2/U3 mapping."""
    shared = {c.native_code: c.common_level for c in urgency_crosswalk() if c.country == country}
    ours = {m.native: m for m in mappings if m.codeset == "urgency_level"}
    problems: list[Problem] = []
    end = rows[-1][0] if rows else 1
    for native, level in shared.items():
        m = ours.get(native)
        if m is None:
            problems.append(Problem(name, end, native, f"urgency code of the shared crosswalk "
                                                       f"({level}) is missing"))
        elif m.common != level:
            problems.append(Problem(name, m.line, native, f"urgency maps to {m.common}, the "
                                                          f"shared crosswalk says {level}"))
    for native, m in ours.items():
        if native not in shared and m.common is not None:
            problems.append(Problem(name, m.line, native,
                                    "urgency code not in the shared urgency crosswalk: add it "
                                    "there, or list it as unmapped"))
    return problems


def load_crosswalk(country: str, where: Path | None = None) -> Crosswalk:
    """``crosswalk-<cc>.csv`` of ``country``, checked; CodeSetError on any problem.

    The packaged files (``where`` None) are loaded and checked once per process."""
    if where is None:
        return _packaged(country)
    path = where / f"crosswalk-{country.lower()}.csv"
    if not path.is_file():
        raise CodeSetError([Problem(path.name, 0, country, "no crosswalk file for country")])
    cw, problems = check_crosswalk(path, country, load_common(where))
    if cw is None:
        raise CodeSetError(problems)
    return cw


@cache
def _packaged(country: str) -> Crosswalk:
    return load_crosswalk(country, folder())


def load_icd10_groups(where: Path | None = None) -> tuple[Icd10Group, ...]:
    """``icd10-groups.csv``, checked: valid ICD-10 prefixes, none twice in a group."""
    path = (where or folder()) / "icd10-groups.csv"
    problems: list[Problem] = []
    _, rows = _rows(path, _ICD_HEADER, problems)
    out: list[Icd10Group] = []
    seen: set[tuple[str, str]] = set()
    for line, row in rows:
        prefix = row["prefix"]
        if not _ICD10.match(prefix):
            problems.append(Problem(path.name, line, prefix, "not an ICD-10 code or category"))
        if (row["group"], prefix) in seen:
            problems.append(Problem(path.name, line, prefix, f"twice in group {row['group']}"))
        seen.add((row["group"], prefix))
        out.append(Icd10Group(row["group"], prefix, row["label"],
                              tuple(row["indicators"].split())))
    if problems:
        raise CodeSetError(problems)
    return tuple(out)


def load_regions(where: Path | None = None) -> dict[str, tuple[str, ...]]:
    """``regions.csv``: country → its regions, checked for repeats."""
    path = (where or folder()) / "regions.csv"
    problems: list[Problem] = []
    _, rows = _rows(path, _REGION_HEADER, problems)
    out: dict[str, list[str]] = {}
    for line, row in rows:
        if row["region"] in out.get(row["country"], []):
            problems.append(Problem(path.name, line, row["region"],
                                    f"twice for {row['country']}"))
        out.setdefault(row["country"], []).append(row["region"])
    if problems:
        raise CodeSetError(problems)
    return {k: tuple(v) for k, v in out.items()}


def check_all(where: Path | None = None) -> list[Problem]:
    """Every problem in every code-set file of ``where`` (default: the packaged folder)."""
    base = where or folder()
    problems: list[Problem] = []
    try:
        common = load_common(base)
    except CodeSetError as exc:
        return exc.problems
    for path in sorted(base.glob("crosswalk-*.csv")):
        country = path.stem.removeprefix("crosswalk-").upper()
        problems += check_crosswalk(path, country, common)[1]
    for loader in (load_icd10_groups, load_regions):
        try:
            loader(base)
        except CodeSetError as exc:
            problems += exc.problems
    return problems


def versions(where: Path | None = None) -> dict[str, str]:
    """File name → version, for every code-set file (what a node reports it mapped with)."""
    out: dict[str, str] = {}
    for path in sorted((where or folder()).glob("*.csv")):
        problems: list[Problem] = []
        meta, _ = _rows(path, [], problems)  # the header is not checked here
        out[path.name] = meta.get("version", "")
    return out
