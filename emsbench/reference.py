"""Per-node reference data that is not per mission: population and response targets.

Two small tables, each row a pydantic model, shipped as package data and loadable from a
node's own file with the same columns:

- ``Population`` (``data/population.csv``): official resident population by country, year,
  region, age band and sex, the denominator of rates per 100,000 person-years (OHCA
  incidence, missions per 1,000). Age bands are the model's ``age_band`` code set, so a
  mission stratum and a population cell always match. Region ``national`` is the whole
  country; the shipped rows are national only.
- ``ResponseTarget`` (``data/response-targets.csv``): the national response-time targets,
  as minutes from call received to first unit on scene and the share that should meet it,
  per common urgency level and urbanicity (``any``: both).

Every row says where it comes from (``source``); figures that are not published are
marked ``assumed:``. Loaders check the whole file and report every problem at once, with
its line: one row per key, every (country, year, region) with all age bands for both
sexes, and no target for ``any`` beside one for ``urban`` or ``rural``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emsbench.model import AgeBand, UrgencyLevel

NATIONAL = "national"
PopulationSex = Literal["female", "male"]
TargetArea = Literal["urban", "rural", "any"]
_COUNTRY = r"^[A-Z]{2}$"


class ReferenceDataError(ValueError):
    """A reference data file cannot be used; the message lists every problem."""


class Population(BaseModel):
    """Resident population of one cell: country x year x region x age band x sex."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = Field(pattern=_COUNTRY, description="ISO 3166-1 alpha-2 code")
    year: int = Field(ge=1900, le=2100, description="Population on 1 January of this year")
    region: str = Field(min_length=1, description="'national', or a region of the model")
    age_band: AgeBand
    sex: PopulationSex
    persons: int = Field(ge=0)
    source: str = Field(min_length=1, description="Where the figure comes from")


class ResponseTarget(BaseModel):
    """A national response-time target: ``share_target`` of responses within ``minutes``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = Field(pattern=_COUNTRY)
    urgency_level: UrgencyLevel
    urbanicity: TargetArea = Field(description="'urban', 'rural' or 'any' (both)")
    minutes: float = Field(gt=0, le=240, description="Call received to first unit on scene")
    share_target: float = Field(gt=0, le=1, description="e.g. 0.9: 90 % within the minutes")
    source: str = Field(min_length=1)

    def applies_to(self, urbanicity: str) -> bool:
        return self.urbanicity in ("any", urbanicity)


def _read(path: Path | None, name: str) -> tuple[str, list[dict[str, str]]]:
    if path is None:
        text = resources.files("emsbench").joinpath(f"data/{name}").read_text("utf-8")
        where = f"emsbench/data/{name}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ReferenceDataError(f"cannot read {path}: {exc}") from exc
        where = str(path)
    return where, list(csv.DictReader(text.splitlines()))


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], where: str,
           rows: list[dict[str, str]]) -> tuple[list[tuple[int, M]], list[str]]:
    parsed: list[tuple[int, M]] = []
    problems: list[str] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            parsed.append((line, model.model_validate(row)))
        except ValidationError as exc:
            problems += [f"{where}:{line}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors()]
    return parsed, problems


def _raise(where: str, problems: list[str]) -> None:
    if problems:
        raise ReferenceDataError(f"{where} is not valid reference data:\n  "
                                 + "\n  ".join(problems))


def load_population(path: Path | None = None) -> tuple[Population, ...]:
    """Validated population rows of ``path`` (default: the shipped file)."""
    where, rows = _read(path, "population.csv")
    parsed, problems = _parse(Population, where, rows)
    seen: dict[tuple[str, int, str, str, str], int] = {}
    cells: dict[tuple[str, int, str], set[tuple[str, str]]] = defaultdict(set)
    for line, p in parsed:
        key = (p.country, p.year, p.region, p.age_band, p.sex)
        if key in seen:
            problems.append(f"{where}:{line}: {'/'.join(map(str, key))} repeats line "
                            f"{seen[key]}")
        seen[key] = line
        cells[(p.country, p.year, p.region)].add((p.age_band, p.sex))
    every = {(a, s) for a in get_args(AgeBand) for s in get_args(PopulationSex)}
    for (country, year, region), have in sorted(cells.items()):
        missing = sorted(every - have)
        if missing:
            problems.append(f"{where}: {country} {year} {region} lacks "
                            + ", ".join(f"{a}/{s}" for a, s in missing))
    _raise(where, problems)
    return tuple(p for _, p in parsed)


def load_response_targets(path: Path | None = None) -> tuple[ResponseTarget, ...]:
    """Validated response targets of ``path`` (default: the shipped file)."""
    where, rows = _read(path, "response-targets.csv")
    parsed, problems = _parse(ResponseTarget, where, rows)
    seen: dict[tuple[str, str, str], int] = {}
    areas: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line, t in parsed:
        key = (t.country, t.urgency_level, t.urbanicity)
        if key in seen:
            problems.append(f"{where}:{line}: {'/'.join(key)} repeats line {seen[key]}")
        seen[key] = line
        areas[(t.country, t.urgency_level)].add(t.urbanicity)
    for (country, level), have in sorted(areas.items()):
        if "any" in have and len(have) > 1:
            problems.append(f"{where}: {country} {level} has a target for 'any' and one for "
                            "'urban' or 'rural'; give either")
    _raise(where, problems)
    return tuple(t for _, t in parsed)


@cache
def _shipped_population() -> tuple[Population, ...]:
    return load_population()


@cache
def _shipped_targets() -> tuple[ResponseTarget, ...]:
    return load_response_targets()


def population(country: str, year: int, region: str = NATIONAL,
               rows: Iterable[Population] | None = None) -> tuple[Population, ...]:
    """The rows of one country, year and region (default: the shipped data).

    KeyError names the years that are there when the year is not.
    """
    source = _shipped_population() if rows is None else tuple(rows)
    found = tuple(p for p in source
                  if p.country == country and p.year == year and p.region == region)
    if not found:
        years = sorted({p.year for p in source if p.country == country and p.region == region})
        raise KeyError(f"no population for {country} {year} {region}; years available: "
                       f"{', '.join(map(str, years)) or 'none'}")
    return found


def population_total(country: str, year: int, region: str = NATIONAL, *,
                     age_band: str | None = None, sex: str | None = None,
                     rows: Iterable[Population] | None = None) -> int:
    """Persons in a country, year and region, optionally of one age band and/or sex."""
    return sum(p.persons for p in population(country, year, region, rows)
               if (age_band is None or p.age_band == age_band) and (sex is None or p.sex == sex))


def population_by(country: str, year: int, region: str = NATIONAL,
                  rows: Iterable[Population] | None = None) -> dict[tuple[str, str], int]:
    """Persons by (age band, sex): the denominators of age- and sex-specific rates."""
    return {(p.age_band, p.sex): p.persons for p in population(country, year, region, rows)}


def response_targets(country: str | None = None,
                     rows: Iterable[ResponseTarget] | None = None) -> tuple[ResponseTarget, ...]:
    """All targets, or one country's (default: the shipped data)."""
    source = _shipped_targets() if rows is None else tuple(rows)
    return tuple(t for t in source if country is None or t.country == country)


def response_target(country: str, urgency_level: str, urbanicity: str,
                    rows: Iterable[ResponseTarget] | None = None) -> ResponseTarget | None:
    """The target that applies to a response, or None when the country has none."""
    for t in response_targets(country, rows):
        if t.urgency_level == urgency_level and t.applies_to(urbanicity):
            return t
    return None
