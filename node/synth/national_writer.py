"""Writer of the Nordic national exports (``national-no`` .. ``national-is``) for synthetic data.

Reads a common-model Parquet file (as ``node.synth.generator.generate`` writes it) and
writes the same missions as the national system would export them, following the format
file (``node/adapters/formats/<fmt>.toml``): national headers, the local date format, the
native codes (for each common code the canonical native code of the country's crosswalk,
the first listed), the yes/no words, the separator and the text encoding. It is one DuckDB
``COPY`` (vectorised, streamed; a non-UTF-8 format is then re-encoded in Python, streamed
too), so a full Swedish year (1.3 M rows) takes seconds.

The native urgency column carries ``urgency_native``. Where ``urgency_level`` is missing
(the generator's deliberately bad rows) it is left empty, so the row is rejected when read
back, as it is when the common file is read; where only the level is known, the canonical
native code of the level is written.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import duckdb

from emsbench import model
from node.adapters.national_format import Column, NationalFormat, load_format
from node.source import literal, quote


def write(common: Path, out: Path, *, fmt: str, country: str) -> Path:
    """Write ``common`` (common-model Parquet) as the national export ``fmt`` to ``out``."""
    spec = load_format(fmt)
    if spec.country != country:
        raise ValueError(f"format {fmt} is the export of {spec.country}, not of {country}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    utf8 = out.with_name(out.name + ".utf8.part")
    try:
        sep, q = literal(spec.separator), literal(spec.quote)
        con = duckdb.connect()
        try:
            con.execute(f"COPY ({select_sql(spec, literal(str(common)))}) TO {literal(str(utf8))} "
                        f"(FORMAT csv, HEADER true, DELIMITER {sep}, QUOTE {q}, ESCAPE {q})")
        finally:
            con.close()
        if codecs.lookup(spec.encoding).name == "utf-8":
            utf8.replace(part)
        else:
            _reencode(utf8, part, spec.encoding)
        part.replace(out)
    finally:
        utf8.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    return out


def select_sql(spec: NationalFormat, parquet: str) -> str:
    """The SELECT over ``read_parquet(parquet)`` giving the export's columns, in the order the
    format declares them, named by their national headers."""
    types = model.duckdb_types()
    parts = []
    for col in spec.columns:
        if types[col.name] == "TIMESTAMP":
            expr = f"strftime({col.name}, {literal(spec.time_format)})"
        elif col.codes is not None:
            expr = _native(spec, col)
        elif col.name == "patient_age" and spec.units.get("patient_age") == "months":
            expr = f"{col.name} * 12"
        else:
            expr = col.name
        parts.append(f"{expr} AS {quote(col.header)}")
    return f"SELECT {', '.join(parts)} FROM read_parquet({parquet})"


def _native(spec: NationalFormat, col: Column) -> str:
    """Common code (or boolean) → the canonical native code, as SQL over ``col``."""
    assert col.codes is not None
    canonical = spec.crosswalk.canonical(col.codes)
    wanted = ("true", "false") if model.duckdb_types()[col.name] == "BOOLEAN" \
        else model.ENUMS[col.name]
    lacking = [c for c in wanted if c not in canonical]
    if lacking:
        # Without a native code the writer could only write the common code, which the
        # adapter would then count as invalid: refuse rather than write a broken export.
        raise ValueError(f"{spec.crosswalk.file}: no native code for {col.codes} "
                         f"{', '.join(lacking)} (needed to write {spec.name})")
    if model.duckdb_types()[col.name] == "BOOLEAN":
        return (f"CASE WHEN {col.name} THEN {literal(canonical['true'])} "
                f"WHEN NOT {col.name} THEN {literal(canonical['false'])} END")
    whens = " ".join(f"WHEN {literal(c)} THEN {literal(n)}" for c, n in canonical.items())
    mapped = f"CASE {col.name} {whens} ELSE {col.name} END"
    if col.native:
        return f"CASE WHEN {col.name} IS NOT NULL THEN coalesce({col.native}, {mapped}) END"
    return mapped


def _reencode(src: Path, dst: Path, encoding: str) -> None:
    """Stream ``src`` (UTF-8) into ``dst`` in ``encoding``; a character it cannot hold is a
    ValueError naming it and its line (never replaced silently)."""
    line = 1
    with src.open("r", encoding="utf-8", newline="") as fin, \
            dst.open("w", encoding=encoding, errors="strict", newline="") as fout:
        while chunk := fin.read(1 << 22):
            try:
                fout.write(chunk)
            except UnicodeEncodeError as exc:
                at = line + chunk.count("\n", 0, exc.start)
                raise ValueError(f"{exc.object[exc.start]!r} on line {at} cannot be written "
                                 f"in {encoding}") from None
            line += chunk.count("\n")
