"""Adapter for the Nordic national exports: one CSV file per year, declared by a format file.

What differs between the countries' exports (headers, separator, encoding, date format,
units, native codes) is data in ``node/adapters/formats/national-*.toml`` and
``emsbench/data/codesets/crosswalk-*.csv``; this module turns a format into the SQL that
reads the file as the common model's input columns. It is registered for every
``national-*`` format (``node.adapters.FORMATS``); ``source`` is told which one it reads.

Nothing is damaged silently. Every produced column is text and the node casts and checks
it (``node.ingest``):

- a time that parses with the declared format becomes ISO text; one that does not is
  passed through as it is written, so the node counts it as ``unparseable`` (if the raw
  text happens to be a time the node would accept, e.g. ISO in a Norwegian file, the
  expected format is appended so that it still fails: a file that mixes formats is read
  as declared or not at all);
- a native code is crosswalked (trimmed, case-insensitively); a code the crosswalk does
  not map is passed through unchanged, so the node rejects the row (a required code set)
  or empties the value, and counts it either way;
- headers are matched as ``node.source`` matches them (case- and accent-insensitive); a
  header the format declares and the file lacks is an error that names it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from emsbench import model
from node.adapters.national_format import Column, FormatError, NationalFormat, load_format
from node.source import (
    UTC_OFFSET,
    InputError,
    Source,
    check_utf8,
    literal,
    normal_header,
    quote,
    transcode,
)


def description(name: str) -> str:
    """The format's one-line description (its file's ``description``)."""
    return load_format(name).description


def source(con: duckdb.DuckDBPyConnection, path: Path, *, fmt: str, encoding: str | None,
           workdir: Path) -> Source:
    """The ``Source`` of a national export ``path`` in format ``fmt`` (national-no ...)."""
    return read(fmt, con, path, encoding=encoding, workdir=workdir)


def read(name: str, con: duckdb.DuckDBPyConnection, path: Path, *, encoding: str | None,
         workdir: Path) -> Source:
    """The ``Source`` of a national export ``path`` in format ``name`` (national-no ...)."""
    try:
        fmt = load_format(name)
    except FormatError as exc:
        raise InputError(f"format {name}: {exc}") from None
    if not path.is_file():
        raise InputError(f"input file {path} does not exist: check 'data' in node.toml")
    if path.suffix.lower() not in (".csv", ".txt"):
        raise InputError(f"{path}: {name} is a CSV export (.csv or .txt)")
    reader, used = _reader(fmt, path, encoding, workdir)
    try:
        headers = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path} ({name}, {used}): "
                         f"{str(exc).splitlines()[0]}") from exc
    found = _match_headers(fmt, headers, path)
    return Source(sql=_select(fmt, found, reader),
                  columns={c: c for c in fmt.carried()},
                  ignored=tuple(h for h in headers if h not in found.values()),
                  encoding=used,
                  origin=_origin(fmt, found),
                  text_lines=True)


def _reader(fmt: NationalFormat, path: Path, encoding: str | None, workdir: Path
            ) -> tuple[str, str]:
    """DuckDB ``read_csv`` of the file as UTF-8 text, and the encoding it was read with.

    ``encoding`` from node.toml, when set, wins over the format's (a service may have
    switched its export to UTF-8 before the format file was updated)."""
    wanted = (encoding or fmt.encoding).lower().replace("_", "-")
    if wanted in ("utf-8", "utf8", "utf-8-sig"):
        check_utf8(path)
        text, used = path, "utf-8"
    else:
        # node.source's transcoding: exact (Python codec), streamed, errors name the line
        text, used = transcode(path, wanted, workdir), wanted
    # Text only, every value cast and checked by the node; the dialect is declared, not
    # sniffed, so a file with few rows cannot be mis-detected.
    sep, q = literal(fmt.separator), literal(fmt.quote)
    return (f"read_csv({literal(str(text))}, header = true, all_varchar = true, delim = {sep}, "
            f"quote = {q}, escape = {q})"), used


def _match_headers(fmt: NationalFormat, headers: list[str], path: Path) -> dict[str, str]:
    """Declared header → the file's header, matched like node.source matches headers."""
    by_normal: dict[str, str] = {}
    problems: list[str] = []
    for h in headers:
        key = normal_header(h)
        if key in by_normal:
            problems.append(f"headers {by_normal[key]!r} and {h!r} are the same column")
        by_normal.setdefault(key, h)
    found: dict[str, str] = {}
    missing = []
    for col in fmt.columns:
        file_header = by_normal.get(normal_header(col.header))
        if file_header is None:
            missing.append(f"{col.header!r} ({col.name})")
        else:
            found[col.header] = file_header
    if missing:
        problems.append(f"header(s) {', '.join(missing)} declared by {fmt.file} are missing "
                        f"from the file (its headers: {', '.join(headers[:60])})")
    if problems:
        raise InputError(f"{path} ({fmt.name}): " + "; ".join(problems))
    return found


def _origin(fmt: NationalFormat, found: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for col in fmt.columns:
        out[col.name] = found[col.header]
        if col.native:
            out[col.native] = found[col.header]
    return out


def _select(fmt: NationalFormat, found: dict[str, str], reader: str) -> str:
    """``(SELECT <model column expressions> FROM (SELECT *, <parsed times> FROM reader))``."""
    types = model.duckdb_types()
    parsed: list[str] = []
    out: dict[str, str] = {}
    for i, col in enumerate(fmt.columns):
        raw = quote(found[col.header])
        if types[col.name] == "TIMESTAMP":
            alias = f"__national_time_{i}"
            parsed.append(f"try_strptime(trim({raw}), {literal(fmt.time_format)}) AS {alias}")
            out[col.name] = _time(raw, alias, fmt.time_format)
        elif col.codes is not None:
            out[col.name] = _crosswalked(raw, fmt, col)
            if col.native:
                out[col.native] = f"trim({raw})"
        elif col.name == "patient_age" and fmt.units.get("patient_age") == "months":
            n = f"TRY_CAST(trim({raw}) AS INTEGER)"
            out[col.name] = f"CASE WHEN {n} IS NULL THEN {raw} ELSE CAST({n} // 12 AS VARCHAR) END"
        else:
            out[col.name] = raw
    select = ", ".join(f"{out[c]} AS {c}" for c in fmt.carried())
    inner = f"SELECT *, {', '.join(parsed)} FROM {reader}" if parsed else f"SELECT * FROM {reader}"
    return f"(SELECT {select} FROM ({inner}))"


def _time(raw: str, parsed: str, time_format: str) -> str:
    """ISO text of a parsed time; else the raw text, made unparseable for the node if the
    node would otherwise read it (see the module docstring)."""
    t = f"trim({raw})"
    return (f"CASE WHEN {t} = '' THEN NULL "
            f"WHEN {parsed} IS NOT NULL THEN CAST({parsed} AS VARCHAR) "
            f"WHEN TRY_CAST({t} AS TIMESTAMP) IS NOT NULL "
            f"OR regexp_matches({t}, {literal(UTC_OFFSET)}) "
            f"THEN {raw} || {literal(f' (expected {time_format})')} "
            f"ELSE {raw} END")


def _crosswalked(raw: str, fmt: NationalFormat, col: Column) -> str:
    """CASE over the native codes of the column's code set; unmapped codes pass through."""
    assert col.codes is not None
    whens = [f"WHEN {literal(native.strip().lower())} THEN {literal(common)}"
             for native, common in fmt.crosswalk.mapping(col.codes).items()
             if common is not None]
    if not whens:
        return raw
    return f"CASE lower(trim({raw})) {' '.join(whens)} ELSE {raw} END"
