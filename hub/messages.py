"""The report's and the site's fixed text, in English and Norwegian (bokmål).

Every word the report or the site shows that is not data (headings, notes, labels of
countries, strata and rejection reasons) comes from one catalogue per language,
``hub/messages/<lang>.toml``; templates and view models look it up here, so a translation
is a data file, never code. Indicator titles and definitions stay as their specs word them
(specs are the working groups' English text). A key missing from a catalogue raises
``KeyError`` when used, and the test suite checks both catalogues have the same keys and
the same ``{placeholders}``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("en", "nb")


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The flattened catalogue of ``lang``: 'section.key' -> text."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    text = resources.files("hub").joinpath("messages", f"{lang}.toml").read_text("utf-8")
    return dict(_flatten(tomllib.loads(text)))


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", str(value)))
    return out


@dataclass(frozen=True)
class Messages:
    """Look-ups in one language; ``m("report.title", year=2025)`` formats a message."""

    lang: str = "en"

    def __call__(self, key: str, **values: object) -> str:
        text = catalogue(self.lang)[key]
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in catalogue(self.lang)

    def number(self, value: float | None, places: int = 1, signed: bool = False) -> str:
        """``value`` with ``places`` decimals, this language's decimal sign and a real minus
        sign ("−1.5"; "−1,5" in Norwegian); ``signed`` shows "+" on a positive value; None
        is "–"."""
        if value is None:
            return "–"
        text = f"{value:+.{places}f}" if signed else f"{value:.{places}f}"
        return text.replace("-", "−").replace(".", self("format.decimal"))

    def country(self, code: str) -> str:
        key = f"country.{code}"
        return self(key) if self.has(key) else code

    def value_label(self, key: str, value: str) -> str:
        """One stratum value in plain words: ('urgency_level', 'U1') -> 'U1 most urgent';
        a value the catalogue does not name keeps its column's name beside it
        ('witnessed by: bystander')."""
        for k in (f"stratum.{key}.{value}", f"stratum.any.{value}"):
            if self.has(k):
                return self(k)
        return f"{self.column(key)}: {value.replace('_', ' ')}"

    def stratum(self, stratum: str, skip: str = "") -> str:
        """A stratum key ('urgency_level=U1;urbanicity=rural') in plain words
        ('U1 most urgent, rural area'); no stratum is 'All cases'."""
        parts = [p.split("=", 1) for p in stratum.split(";") if p]
        shown = [self.value_label(k, v) for k, v in parts if k != skip]
        return ", ".join(shown) or self("stratum.all")

    def column(self, column: str) -> str:
        key = f"column.{column}"
        return self(key) if self.has(key) else column.replace("_", " ")

    def reason(self, code: str) -> str:
        """A rejection reason code ('missing:urgency_level') in plain words ('urgency level
        missing')."""
        kind, _, column = code.partition(":")
        if self.has(f"reason.{kind}"):
            return self(f"reason.{kind}", column=self.column(column) if column else "")
        return code.replace("_", " ").replace(":", ": ")
