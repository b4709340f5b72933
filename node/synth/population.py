"""The official population scaled down to a synthetic year's volume, for rates.

A synthetic file of ``rows`` missions stands for the fraction ``rows / yearly_missions`` of
a country's real year (``calibration``). Rates divide events by the population, so a node
running on such a file needs the population scaled by the same fraction, or every rate
would come out that much too small: with it, OHCA incidence and responses per 1,000 come
out near the calibrated national figures. The scaled file has the reference format
(``emsbench.reference``), so a node reads it through its node.toml key ``population``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from emsbench.files import write_atomic
from emsbench.reference import population
from node.synth.calibration import calibration

HEADER = ("country", "year", "region", "age_band", "sex", "persons", "source")


def volume_fraction(country: str, rows: int) -> float:
    """The share of the country's real yearly volume that ``rows`` synthetic missions are."""
    return rows / calibration(country).yearly_missions


def write_scaled_population(path: Path, country: str, year: int, fraction: float) -> Path:
    """Write the shipped population of ``country`` and ``year`` × ``fraction`` (each cell
    rounded) to ``path`` in the reference format; KeyError when none is shipped."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for p in population(country, year):
        writer.writerow((p.country, p.year, p.region, p.age_band, p.sex,
                         round(p.persons * fraction),
                         f"synthetic: shipped reference x {fraction:.6g} (the synthetic "
                         "data's share of the national yearly volume)"))
    write_atomic(path, out.getvalue().encode("utf-8"))
    return path
