"""The declared national export formats (``node/adapters/formats/national-*.toml``), checked.

A Nordic country's export differs from the common model in its headers (in the national
language), separator, text encoding, date/time format, units and native codes. None of that
is code: each format file declares it, and this module reads the file and checks it against
the model (``emsbench.model``) and the country's crosswalk (``emsbench.codesets``), so the
adapter (``node.adapters.national``) and the synthetic writer
(``node.synth.national_writer``) can trust it. A format file looks like::

    format = "national-no"          # its name in node.adapters.FORMATS
    version = "2025.1"
    country = "NO"                  # the crosswalk is emsbench/data/codesets/crosswalk-no.csv
    description = "..."
    booleans = "boolean"            # crosswalk code set of the yes/no words (ja/nei)

    [csv]
    separator = ";"
    encoding = "utf-8"              # or e.g. "windows-1252": the node transcodes
    quote = '"'

    [time]
    format = "%d.%m.%Y %H:%M:%S"    # DuckDB strptime/strftime; naive local time

    [units]
    patient_age = "years"           # or "months"

    [columns]                       # model column = national header
    mission_id = "oppdrag_id"
    patient_sex = { header = "kjønn", codes = "patient_sex" }
    urgency_level = { header = "hastegrad", codes = "urgency_level", native = "urgency_native" }

A column with ``codes`` is crosswalked with that code set of the country's crosswalk;
``native`` also keeps the raw native code in another model column (the national urgency
code is both ``urgency_native`` and, crosswalked, ``urgency_level``). Boolean columns use
the ``booleans`` code set. A model input column the file does not list is one the export
does not carry: the node sees it as missing (NULL).
"""

from __future__ import annotations

import codecs
import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from emsbench import codesets, model
from node.source import normal_header

FORMAT_DIR = Path(__file__).parent / "formats"
TIME_UNITS = ("years", "months")
_TOP_KEYS = {"format", "version", "country", "description", "booleans", "csv", "time",
             "units", "columns"}
_CSV_KEYS = {"separator", "encoding", "quote"}
_COLUMN_KEYS = {"header", "codes", "native"}


class FormatError(ValueError):
    """A national format file is broken (the message names the file and the key)."""


@dataclass(frozen=True)
class Column:
    """One model column the export carries: its national header and crosswalk code set."""

    name: str  # model column
    header: str  # national header
    codes: str | None = None  # crosswalk code set, for code and boolean columns
    native: str | None = None  # model column that also keeps the raw native code


@dataclass(frozen=True)
class NationalFormat:
    """A checked format file."""

    name: str
    version: str
    country: str
    description: str
    separator: str
    quote: str
    encoding: str
    time_format: str
    units: dict[str, str]
    columns: tuple[Column, ...]
    crosswalk: codesets.Crosswalk
    file: str

    def carried(self) -> tuple[str, ...]:
        """Model input columns the export fills, in model order."""
        names = {c.name for c in self.columns} | {c.native for c in self.columns if c.native}
        return tuple(c for c in model.input_columns() if c in names)

    def not_carried(self) -> tuple[str, ...]:
        """Model input columns the export does not carry (always NULL when read)."""
        return tuple(c for c in model.input_columns() if c not in self.carried())


def format_path(name: str) -> Path:
    return FORMAT_DIR / f"{name}.toml"


def names() -> tuple[str, ...]:
    """Every declared national format, by file name."""
    return tuple(sorted(p.stem for p in FORMAT_DIR.glob("national-*.toml")))


@cache
def load_format(name: str) -> NationalFormat:
    """The format file ``formats/<name>.toml``, checked (cached per process)."""
    return parse_format(format_path(name), name)


def _str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise FormatError(f"{where}: '{key}' must be a non-empty string")
    return value


def parse_format(path: Path, name: str | None = None) -> NationalFormat:
    """Read and check one format file; FormatError names the file and what is wrong."""
    where = path.name
    if not path.is_file():
        raise FormatError(f"no format file {path}")
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{where}: {exc}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise FormatError(f"{where}: unknown key(s) {sorted(unknown)}")
    fmt = _str(raw, "format", where)
    if name is not None and fmt != name:
        raise FormatError(f"{where}: says format = {fmt!r}, expected {name!r}")
    country = _str(raw, "country", where)
    try:
        crosswalk = codesets.load_crosswalk(country)
    except codesets.CodeSetError as exc:
        raise FormatError(f"{where}: the {country} crosswalk is broken: {exc}") from None
    csv_raw = raw.get("csv", {})
    if set(csv_raw) - _CSV_KEYS:
        raise FormatError(f"{where}: unknown key(s) in [csv]: {sorted(set(csv_raw) - _CSV_KEYS)}")
    separator = _str(csv_raw, "separator", f"{where} [csv]")
    quote = str(csv_raw.get("quote", '"'))
    encoding = _str(csv_raw, "encoding", f"{where} [csv]").lower()
    if len(separator) != 1 or len(quote) != 1 or separator == quote:
        raise FormatError(f"{where} [csv]: separator and quote must be two different "
                          "single characters")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise FormatError(f"{where} [csv]: unknown encoding {encoding!r}") from None
    time_format = _str(raw.get("time", {}), "format", f"{where} [time]")
    _check_time_format(time_format, where)
    units = {str(k): str(v) for k, v in dict(raw.get("units", {})).items()}
    for col, unit in units.items():
        if col != "patient_age" or unit not in TIME_UNITS:
            raise FormatError(f"{where} [units]: {col} = {unit!r}; only patient_age in "
                              f"{' or '.join(TIME_UNITS)} is supported")
    booleans = _str(raw, "booleans", where)
    columns = _columns(raw.get("columns", {}), booleans, crosswalk, where)
    return NationalFormat(
        name=fmt, version=_str(raw, "version", where), country=country,
        description=_str(raw, "description", where), separator=separator, quote=quote,
        encoding=encoding, time_format=time_format, units=units, columns=columns,
        crosswalk=crosswalk, file=where)


def _check_time_format(fmt: str, where: str) -> None:
    """The format must round-trip a time to the second (else the writer loses data)."""
    probe = datetime(2025, 11, 23, 17, 48, 59)
    try:
        back = datetime.strptime(probe.strftime(fmt), fmt)
    except ValueError as exc:
        raise FormatError(f"{where} [time]: format {fmt!r}: {exc}") from None
    if back != probe:
        raise FormatError(f"{where} [time]: format {fmt!r} loses part of a time "
                          "(it needs date, hours, minutes and seconds)")


def _columns(raw: dict[str, Any], booleans: str, crosswalk: codesets.Crosswalk,
             where: str) -> tuple[Column, ...]:
    inputs = model.input_columns()
    types = model.duckdb_types()
    sets = crosswalk.codesets()
    out: list[Column] = []
    filled: dict[str, str] = {}  # model column → what fills it, for the repeat check
    headers: dict[str, str] = {}  # normalised header → model column

    def fill(col: str, by: str) -> None:
        if col not in inputs:
            raise FormatError(f"{where} [columns]: {col!r} is not an input column of the "
                              "model (derived columns are computed by the node)")
        if col in filled:
            raise FormatError(f"{where} [columns]: {col} is filled twice ({filled[col]}, {by})")
        filled[col] = by

    if booleans not in sets:
        raise FormatError(f"{where}: booleans = {booleans!r} is not a code set of "
                          f"{crosswalk.file}")
    for col, spec in raw.items():
        if isinstance(spec, str):
            spec = {"header": spec}
        if not isinstance(spec, dict) or set(spec) - _COLUMN_KEYS:
            raise FormatError(f"{where} [columns]: {col} must be a header or a table with "
                              f"{', '.join(sorted(_COLUMN_KEYS))}")
        header = _str(spec, "header", f"{where} [columns] {col}")
        codes = spec.get("codes")
        native = spec.get("native")
        fill(col, header)
        if types[col] == "BOOLEAN":
            codes = codes or booleans
        if col in model.ENUMS and not codes:
            raise FormatError(f"{where} [columns]: {col} is a code set; say which crosswalk "
                              f"code set maps it (codes = ...)")
        if codes is not None and codes not in sets:
            raise FormatError(f"{where} [columns]: {col}: codes = {codes!r} is not a code set "
                              f"of {crosswalk.file}")
        if codes is not None and types[col] != "BOOLEAN" and codes != col:
            raise FormatError(f"{where} [columns]: {col} must use the code set {col!r}, "
                              f"not {codes!r}")
        if native is not None:
            if codes is None or types.get(native) != "VARCHAR" or native in model.ENUMS:
                raise FormatError(f"{where} [columns]: {col}: native = {native!r} must name a "
                                  "free-text model column, on a crosswalked column")
            fill(native, header)
        key = normal_header(header)
        if key in headers:
            raise FormatError(f"{where} [columns]: header {header!r} of {col} is also the "
                              f"header of {headers[key]}")
        headers[key] = col
        out.append(Column(col, header, str(codes) if codes else None,
                          str(native) if native else None))
    for col in inputs:
        if model.is_required(col) and col not in filled:
            raise FormatError(f"{where} [columns]: the model requires {col}")
    return tuple(out)
