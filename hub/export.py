"""Long-form CSV export of the merged benchmark figures.

One row per (indicator, stratum, country) with the counts behind each value, so anyone can
recompute the published shares and re-pool countries themselves. The column set is a
public interface: change it only with a new export version (``EXPORT_VERSION``).

Version 2 added ``n_countries``, ``countries`` (the countries with at least one case in the
figure, space-separated) and ``omitted`` (those whose count was withheld by their node, so
a pooled figure without them is partial), ``diff_vs_rest`` with ``diff_ci_low`` and
``diff_ci_high`` (a Nordic country's share minus that of the other Nordic countries pooled,
in percentage points, with Newcombe's hybrid score interval), and rounds each value and
interval to the precision its resolution supports (shares 0.1; a figure read from
histogram bins as many decimals as its bin width has).

Version 3 added ``method``: how a quantile was obtained, ``exact`` (computed by the
country's node from its raw values, Hyndman–Fan type 7) or ``histogram`` (read off the
released, for a pool the pooled, histogram); empty for other figures. An exact value is
written with two decimals (to the second, in minutes). It also added ``expected`` and
``coverage`` for observed/expected ratios: the expected count under the pooled case-mix
rates (one decimal) and the share of the country's cases in the case-mix cells that count
(three decimals, 0–1); empty for other figures. Rates carry events as ``numerator`` and
persons as ``denominator``; a ratio its observed count and its cases.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from hub.merge import Figure, country_key, natural_key

EXPORT_VERSION = "3"
COLUMNS = ("indicator_id", "country", "year", "stratum", "numerator", "denominator", "value",
           "ci_low", "ci_high", "suppressed", "spec_version", "unit", "n_countries",
           "countries", "omitted", "diff_vs_rest", "diff_ci_low", "diff_ci_high", "method",
           "expected", "coverage")


def _int(value: int | None) -> str:
    return "" if value is None else str(value)


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def safe_text(text: str) -> str:
    """Text for a CSV cell that no spreadsheet evaluates: a leading formula character is
    prefixed with an apostrophe (OWASP's advice). Stratum values are code-set values checked
    at intake, so this is the second fence, not the first."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def figure_row(f: Figure) -> dict[str, str]:
    """The CSV row of one figure, every field as text."""
    return {
        "indicator_id": safe_text(f.indicator_id),
        "country": safe_text(f.country),
        "year": str(f.year),
        "stratum": safe_text(f.stratum),
        "numerator": _int(f.numerator),
        "denominator": _int(f.denominator),
        "value": f.rounded(f.value),
        "ci_low": f.rounded(f.ci_low),
        "ci_high": f.rounded(f.ci_high),
        "suppressed": "true" if f.suppressed else "false",
        "spec_version": safe_text(f.spec_version),
        "unit": safe_text(f.unit),
        "n_countries": str(f.n_countries),
        "countries": safe_text(" ".join(f.countries)),
        "omitted": safe_text(" ".join(f.omitted)),
        "diff_vs_rest": f.rounded(f.diff),
        "diff_ci_low": f.rounded(f.diff_low),
        "diff_ci_high": f.rounded(f.diff_high),
        "method": safe_text(f.method),
        "expected": "" if f.expected is None else f"{f.expected:.1f}",
        "coverage": "" if f.coverage is None else f"{f.coverage:.3f}",
    }


def sort_figures(figures: Iterable[Figure]) -> list[Figure]:
    """Indicator id, then stratum (numbers in labels compare as numbers), then country order
    NO, SE, DK, FI, IS, NORDIC, US."""
    return sorted(figures, key=lambda f: (f.indicator_id, natural_key(f.stratum),
                                          country_key(f.country)))


def write_csv(figures: Iterable[Figure], path: Path | str) -> Path:
    """Write ``figures`` as UTF-8 CSV with a header row; returns the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        # CRLF as RFC 4180 has it; the writer then also quotes a field holding a stray CR.
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for f in sort_figures(figures):
            writer.writerow(figure_row(f))
    return out
