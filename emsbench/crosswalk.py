"""Urgency crosswalk: national dispatch codes to the common levels U1/U2/U3.

A copy of ``shared/reference/urgency-crosswalk.csv`` ships as package data so that a node
maps codes the same way wherever it runs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class UrgencyCode:
    country: str
    system: str
    native_code: str
    native_label: str
    common_level: str
    lights_and_sirens_usual: str


@cache
def crosswalk() -> tuple[UrgencyCode, ...]:
    """All rows of the crosswalk, in file order."""
    text = resources.files("emsbench").joinpath("data/urgency-crosswalk.csv").read_text("utf-8")
    return tuple(UrgencyCode(**row) for row in csv.DictReader(text.splitlines()))


def codes_for(country: str, system: str | None = None) -> list[UrgencyCode]:
    """Codes of one country (and, for the US, optionally one coding system)."""
    rows = [c for c in crosswalk() if c.country == country]
    if system is not None:
        rows = [c for c in rows if c.system == system]
    if not rows:
        raise KeyError(f"no urgency codes for country {country!r} in the crosswalk")
    return rows


def common_level(country: str, native_code: str) -> str:
    """Common level of a national code; KeyError names the code when it is unknown."""
    for c in codes_for(country):
        if c.native_code == native_code:
            return c.common_level
    raise KeyError(f"urgency code {native_code!r} is not in the {country} crosswalk")
