"""What ``emsbench specs validate`` checks beyond loading a catalogue.

``emsbench.specs`` stays the one definition of a valid spec (node and hub load specs with
it). For the authors, ``validate`` also checks that test-row values fit their column's type,
code set and range and that expected strata are values of their columns (otherwise
``specs test`` could not run a case: problems), that every value of every stratum appears
in some expected cell and the template's TODOs are gone (warnings), and that no released
spec version changed meaning (the ``releases/`` history). Every finding carries its file
and line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emsbench.specs import IndicatorSpec, Problem, YamlLines


@dataclass
class Validation:
    """What ``validate`` found: the valid specs, problems and warnings, with locations."""

    files: list[Path]
    specs: list[IndicatorSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def summary(self, strict: bool = False) -> str:
        failing = self.problems + (self.warnings if strict else [])
        warned = "" if strict or not self.warnings else \
            f" ({plural(len(self.warnings), 'warning')})"
        if failing:
            files = {p.path or p.file for p in failing}
            return (f"{plural(len(failing), 'problem')} in {plural(len(files), 'file')}"
                    f"{warned}")
        return f"{plural(len(self.specs), 'spec')} valid{warned}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def spec_files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """The ``*.yaml`` files of the folders and files given, and what is wrong with them."""
    from emsbench.specs import Problem

    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.yaml"))
            if not found:
                problems.append(Problem(str(path), None, "no *.yaml indicator specs here"))
            files += found
            problems += [Problem(p.name, None, "not read: spec files end in .yaml", p)
                         for p in sorted(path.glob("*.yml"))]
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, "no such file or folder"))
    return list(dict.fromkeys(f.resolve() for f in files)), problems


def _shown(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def value_problem(column: str, value: Any) -> str | None:
    """Why ``value`` cannot be a test row's value of ``column`` (None: it can)."""
    from emsbench import model
    from emsbench.specs import did_you_mean

    if value is None:
        return None
    kind = model.duckdb_types()[column]
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"expected true or false, got {_shown(value)}"
    if kind == "INTEGER" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expected integer, got {_shown(value)}"
    if kind == "TIMESTAMP":
        if isinstance(value, datetime):
            return None
        try:
            datetime.fromisoformat(value)  # how spec_cases reads a time
            return None
        except (TypeError, ValueError):
            return f'expected a time such as "2025-03-01 10:00:00", got {_shown(value)}'
    if kind == "VARCHAR" and not isinstance(value, str):
        return f"expected text (put it in quotes), got {_shown(value)}"
    codes = model.ENUMS.get(column)
    if codes is not None and value not in codes:
        return (f"{_shown(value)} is not in the code set of {column} ({', '.join(codes)})"
                + did_you_mean(str(value), codes))
    if column in model.RANGES:
        lo, hi = model.RANGES[column]
        if not lo <= value <= hi:
            return f"{value} is outside {lo}..{hi}"
    return None


def authoring_checks(path: Path, spec: IndicatorSpec, lines: YamlLines
                     ) -> tuple[list[Problem], list[Problem]]:
    """Problems and warnings of a spec that passed both validation stages, about its
    test cases and template text (see the module text)."""
    from emsbench import model
    from emsbench.specs import Problem, did_you_mean, loc_text, stratum_values

    problems: list[Problem] = []
    warnings: list[Problem] = []

    def at(target: list[Problem], loc: tuple[str | int, ...], message: str) -> None:
        target.append(Problem(path.name, lines.line(loc), f"{loc_text(loc)}: {message}",
                              path))

    columns = set(model.columns())
    for c, case in enumerate(spec.tests):
        for r, row in enumerate(case.rows):
            for column, value in row.items():
                why = value_problem(column, value) if column in columns else None
                if why:
                    at(problems, ("tests", c, "rows", r, column), why)
        seen: set[tuple[tuple[str, str], ...]] = set()
        for k, cell in enumerate(case.expect):
            for column, value in cell.stratum.items():
                if column in spec.strata and column in model.ENUMS:
                    allowed = stratum_values(column)
                    if value not in allowed:
                        at(problems, ("tests", c, "expect", k, "stratum", column),
                           f"{value!r} is not a value of {column} ({', '.join(allowed)})"
                           + did_you_mean(value, allowed))
            key = tuple(sorted(cell.stratum.items()))
            if key in seen:
                at(problems, ("tests", c, "expect", k),
                   f"a second expected cell for the stratum {dict(key)}")
            seen.add(key)
    for i, column in enumerate(spec.strata):
        if column not in model.ENUMS:
            continue
        covered = {cell.stratum.get(column) for case in spec.tests for cell in case.expect}
        missing = [v for v in stratum_values(column) if v != "unknown" and v not in covered]
        if missing:
            at(warnings, ("strata", i),
               f"no test case expects a cell with {column} = {', '.join(missing)}; add "
               "rows that produce one")
    for name in ("title", "description"):
        if "TODO" in getattr(spec, name):
            at(warnings, (name,), "still holds the template's TODO")
    return problems, warnings


def validate_paths(paths: list[Path]) -> Validation:
    """Every problem and warning of the spec files in ``paths`` (folders or files)."""
    from emsbench.specs import RELEASES_DIR, Problem, check_files, unbumped_changes

    files, problems = spec_files(paths)
    report = Validation(files=files, problems=problems)
    if not files:
        return report
    loaded, found = check_files(files)
    report.problems += found
    bad = {p.path for p in found}
    for path, spec, lines in loaded:
        if path in bad:
            continue
        errs, warns = authoring_checks(path, spec, lines)
        report.problems += errs
        report.warnings += warns
        if not errs:
            report.specs.append(spec)
    # A released version may not change meaning (each folder's releases/ history).
    for folder in sorted({path.parent for path, _, _ in loaded}):
        mine = [spec for path, spec, _ in loaded if path.parent == folder]
        report.problems += [Problem(file="", line=None, message=message)
                            for message in unbumped_changes(mine, folder / RELEASES_DIR)]

    def order(p: Problem) -> tuple[str, int]:
        return (str(p.path or p.file), p.line or 0)

    report.problems.sort(key=order)
    report.warnings.sort(key=order)
    return report


def located(problem: Problem, warning: bool = False) -> str:
    """``FILE:LINE: message`` with FILE relative to the working folder when inside it."""
    name = problem.file
    if problem.path is not None:
        rel = os.path.relpath(problem.path)
        name = rel if not rel.startswith("..") else str(problem.path)
    where = f"{name}:{problem.line}" if problem.line else name
    text = f"warning: {problem.message}" if warning else problem.message
    return f"{where}: {text}" if where else text
