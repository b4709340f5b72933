"""The official population scaled down to a synthetic year's volume, for rates.

A synthetic file of ``rows`` missions stands for the fraction ``rows / yearly_missions`` of
a country's real year (``calibration``, moved to the year by ``trends``). Rates divide
events by the population, so a node running on such a file needs the population scaled by
the same fraction, or every rate would come out that much too small: with it, OHCA
incidence and responses per 1,000 come out near the calibrated national figures. The
scaled file has the reference format (``emsbench.reference``), so a node reads it through
its node.toml key ``population``.

The shipped reference has one year per country (2025, approximate national totals; the
shared reference gives no yearly series to add more). A year it lacks is an error unless
the caller asks for the nearest shipped year (``nearest=True``), which the synthetic
data allow: their population is the calibration's in every year (``trends``), so the
nearest year's figures are the right denominator for them, and the file says so in its
``source`` column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from emsbench.files import write_atomic
from emsbench.reference import NATIONAL, load_population, population
from node.synth.trends import CALIBRATION_YEAR, country_for_year

HEADER = ("country", "year", "region", "age_band", "sex", "persons", "source")


def volume_fraction(country: str, rows: int, year: int = CALIBRATION_YEAR) -> float:
    """The share of the country's real volume in ``year`` that ``rows`` synthetic
    missions are."""
    return rows / country_for_year(country, year).yearly_missions


def shipped_years(country: str) -> list[int]:
    """Years the shipped reference has a national population of ``country`` for."""
    return sorted({p.year for p in load_population()
                   if p.country == country and p.region == NATIONAL})


def population_year(country: str, year: int) -> int:
    """The shipped year nearest ``year`` (the later one on a tie); KeyError when none."""
    years = shipped_years(country)
    if not years:
        raise KeyError(f"no population shipped for {country}")
    return min(years, key=lambda y: (abs(y - year), -y))


def write_scaled_population(path: Path, country: str, year: int, fraction: float, *,
                            nearest: bool = False) -> Path:
    """Write the shipped population of ``country`` and ``year`` × ``fraction`` (each cell
    rounded) to ``path`` in the reference format.

    KeyError when no population of ``year`` is shipped, unless ``nearest``: then the
    nearest shipped year's figures stand for ``year``, and each row's source says so.
    """
    used = population_year(country, year) if nearest else year
    note = "" if used == year else f" of {used} (no {year} figures shipped)"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for p in population(country, used):
        writer.writerow((p.country, year, p.region, p.age_band, p.sex,
                         round(p.persons * fraction),
                         f"synthetic: shipped reference{note} x {fraction:.6g} (the "
                         "synthetic data's share of the national yearly volume)"))
    write_atomic(path, out.getvalue().encode("utf-8"))
    return path
