"""The published figure: one number of one indicator, stratum and country (or pool).

Indicator kinds (``emsbench.kinds``) make figures from pooled counts; the hub's merge, report
and export read them. Shared here so that kinds, which are core code, need nothing from the
hub.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emsbench.specs import IndicatorSpec


@dataclass(frozen=True)
class Figure:
    """One published number: an indicator in one stratum for one country (or a pool).

    ``n_countries`` counts the countries whose released counts contain at least one case
    and ``countries`` names them; ``omitted`` names the countries whose count for this
    stratum was withheld by their node, so a pool without them says so (``suppressed`` is
    then true too). A pooled figure whose counts are small under the strictest threshold
    of the countries in it is withheld by the hub (``suppressed``, no counts).

    ``numerator``/``denominator`` are a share's counts, a rate's events and persons, a
    distribution's cases (denominator only) or an O/E ratio's observed events and the
    cases they are observed in (so numerator / denominator is the crude share); the
    ratio's expected events are ``expected`` and ``coverage`` is the share of the
    country's cases whose counts were released (``emsbench.kinds.ratio``).
    """

    indicator_id: str
    spec_version: str
    unit: str
    country: str
    year: int
    stratum: str
    numerator: int | None
    denominator: int | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    suppressed: bool
    n_countries: int
    countries: tuple[str, ...] = ()
    omitted: tuple[str, ...] = ()
    decimals: int = 1  # the precision the figure's resolution supports
    # A Nordic country's value minus the value of the other Nordic countries pooled, in the
    # figure's unit (percentage points for shares), with its interval; None where not
    # computed.
    diff: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None
    # How the value was obtained where a kind has more than one way ("exact" node value,
    # "histogram" read off pooled bins); '' when there is only one.
    method: str = ""
    # O/E ratios: expected events under the reference rates, and the share of the cases
    # (of cells whose size is known) that the figure rests on; None for other kinds.
    expected: float | None = None
    coverage: float | None = None

    def rounded(self, value: float | None) -> str:
        """``value`` with the decimals its resolution supports; '' when missing."""
        return "" if value is None else f"{value:.{self.decimals}f}"


def bin_decimals(width: float) -> int:
    """Decimals a value read off bins of ``width`` supports (1-minute bins: none, 0.5: one,
    0.25: two)."""
    return max(0, -math.floor(math.log10(width) + 1e-12)) + (1 if _quarter(width) else 0)


def _quarter(width: float) -> bool:
    # 0.25 or 0.75 needs one decimal more than its leading digit suggests
    scaled = width * 10 ** max(0, -math.floor(math.log10(width) + 1e-12))
    return abs(scaled * 10 % 10) > 1e-9 and abs(scaled - round(scaled)) > 1e-9


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that orders '5-17' before '18-64' (digit runs compare as numbers)."""
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", text) if part]


def stratum_label(stratum: dict[str, str], strata: list[str]) -> str:
    """``key=value;key=value`` in the spec's strata order; '' when the spec has no strata."""
    return ";".join(f"{k}={stratum[k]}" for k in strata)


def spec_decimals(spec: IndicatorSpec) -> int:
    """Decimals a figure of ``spec`` supports: one for counts-based values (0.1 %, finer
    than any interval here), the bins' resolution for a value read off a histogram."""
    return 1 if spec.bins is None else bin_decimals(spec.bins.width)
