"""Read a country's mission file and validate it against the common model, damaging nothing
silently.

Validation is vectorised SQL in DuckDB, one pass over the input (``node.source`` opens it
and matches its headers). Every value is checked against its column (parses as its type,
in its code set, in its range); a value with an explicit UTC offset is converted to the
centre's time zone, never cut off. Only the model's required fields reject a row (missing
or failing, a call outside the reporting year, a mission id seen before in the file: the
first occurrence is kept); a failing optional value becomes NULL and is counted. Accepted
rows whose times run backwards are counted per pair of times. A rejects file (row, line,
mission id, column, reason, value) lists every rejected row and every value set to NULL;
it stays on the node. Input is Parquet or CSV; CSV is read as text and cast here, so a bad
value never fails the whole file.

The derived columns of the model (``model.DERIVED``: ``age_band``, ``call_month``) are
computed here from the typed input, in the same pass, and never read from the file (a file
column of that name is listed as ignored); ``model.COMPLETED`` rules complete an input
column (``stroke_scale_done`` is true wherever a stroke scale result or type is recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from emsbench import model
from emsbench.sandbox import open_sandbox
from node.source import InputError, Source, open_source, quote

__all__ = ["InputError", "IngestReport", "ingest", "open_missions"]


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class IngestReport:
    """What reading the input did. ``rejected_by_reason`` (aggregate, protected) enters the
    submission; everything else stays on the node (summary, data-quality report)."""

    rows_read: int
    rows_accepted: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    missing_optional_columns: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()
    # values of optional fields that failed a check and were set to NULL, by reason:column
    nulled_by_reason: dict[str, int] = field(default_factory=dict)
    # accepted rows with a time before the one that must precede it, by "later<earlier"
    out_of_order: dict[str, int] = field(default_factory=dict)
    renamed_columns: dict[str, str] = field(default_factory=dict)  # file header → column
    encoding: str = ""
    rejects_file: Path | None = None


# Times in the order a mission happens: none may precede a recorded time before it.
TIME_CHAINS: tuple[tuple[str, ...], ...] = (
    ("call_ring_start", "call_answered"),
    ("call_received", "unit_notified", "unit_en_route", "arrived_scene", "at_patient",
     "left_scene", "at_destination"))
_OFFSET = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def _typed(col: str, raw: str, source_type: str, tz: str) -> str:
    """``raw`` as the model type of ``col``; a time with a UTC offset (text ending in ``Z``
    or ``+01:00``, or a TIMESTAMPTZ column) is converted to local time in ``tz``."""
    target = model.duckdb_types()[col]
    if target == "TIMESTAMP":
        zone = _lit(tz)
        if source_type.startswith("TIMESTAMP WITH TIME ZONE"):
            return f"timezone({zone}, {raw})"
        if source_type == "VARCHAR":
            return (f"CASE WHEN regexp_matches(trim({raw}), {_lit(_OFFSET)}) "
                    f"THEN timezone({zone}, TRY_CAST(trim({raw}) AS TIMESTAMPTZ)) "
                    f"ELSE TRY_CAST({raw} AS TIMESTAMP) END")
    return f"TRY_CAST({raw} AS {target})"


def _why(col: str, raw: str, typed: str) -> str:
    """The first check ``raw`` fails, as ``reason:column``; NULL when it passes or is NULL."""
    whens = []
    if model.duckdb_types()[col] != "VARCHAR":
        whens.append(f"WHEN ({typed}) IS NULL THEN 'unparseable:{col}'")
    if col in model.ENUMS:
        allowed = ", ".join(_lit(v) for v in model.ENUMS[col])
        whens.append(f"WHEN CAST({raw} AS VARCHAR) NOT IN ({allowed}) "
                     f"THEN 'invalid_code:{col}'")
    if col in model.RANGES:
        lo, hi = model.RANGES[col]
        whens.append(f"WHEN ({typed}) NOT BETWEEN {lo} AND {hi} THEN 'out_of_range:{col}'")
    if not whens:
        return "NULL"
    return f"CASE WHEN {raw} IS NULL THEN NULL {' '.join(whens)} END"


def checked_sql(source: Source, source_types: dict[str, str], year: int, tz: str) -> str:
    """One pass over the input: per column its final typed value (NULL where an optional
    value failed), why it failed and the raw text; per row the reason it is rejected (a
    required field missing or failing, a call outside the year, a repeated mission id)."""
    inner, why_cols, row_whens = ["_row"], [], []
    for col in model.input_columns():
        header = source.columns.get(col)
        if header is None:
            inner.append(f"CAST(NULL AS {model.duckdb_types()[col]}) AS {col}")
            inner.append(f"CAST(NULL AS VARCHAR) AS _why_{col}, "
                         f"CAST(NULL AS VARCHAR) AS _raw_{col}")
            continue
        raw = quote(header)
        typed = _typed(col, raw, source_types[header], tz)
        why = _why(col, raw, typed)
        inner.append(f"CASE WHEN ({why}) IS NULL THEN {typed} END AS {col}")
        inner.append(f"{why} AS _why_{col}, CASE WHEN ({why}) IS NOT NULL THEN "
                     f"CAST({raw} AS VARCHAR) END AS _raw_{col}")
        why_cols.append(col)
    for col in model.input_columns():
        if model.is_required(col):
            row_whens.append(f"WHEN _why_{col} IS NOT NULL THEN _why_{col}")
            row_whens.append(f"WHEN {col} IS NULL THEN 'missing:{col}'")
    row_whens.append(f"WHEN year(call_received) <> {int(year)} THEN 'outside_period'")
    row_whens.append("WHEN _seen > 1 THEN 'duplicate:mission_id'")
    reason = "CASE " + " ".join(row_whens) + " END"
    column = "CASE " + " ".join(
        [f"WHEN _why_{c} IS NOT NULL OR {c} IS NULL THEN '{c}'"
         for c in model.input_columns() if model.is_required(c)]
        + [f"WHEN year(call_received) <> {int(year)} THEN 'call_received'",
           "WHEN _seen > 1 THEN 'mission_id'"]) + " END"
    value = "CASE " + " ".join(
        [f"WHEN _why_{c} IS NOT NULL THEN _raw_{c}" for c in model.input_columns()
         if model.is_required(c)]
        + [f"WHEN year(call_received) <> {int(year)} THEN CAST(call_received AS VARCHAR)",
           "WHEN _seen > 1 THEN mission_id"]) + " END"
    return (f"SELECT *, {reason} AS _reject_reason, {column} AS _reject_column, "
            f"{value} AS _reject_value FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY mission_id ORDER BY _row) AS _seen "
            f"FROM (SELECT {', '.join(inner)} FROM "
            f"(SELECT row_number() OVER () AS _row, * FROM {source.sql})))")


def missions_select() -> str:
    """Every model column in model order, over the typed input columns: derived and
    completed columns by their rule (``model.DERIVED``, ``model.COMPLETED``)."""
    types = model.duckdb_types()
    rules = {**model.DERIVED, **model.COMPLETED}
    return ", ".join(f"CAST(({rules[col]}) AS {types[col]}) AS {col}" if col in rules else col
                     for col in model.columns())


def open_missions(path: Path, year: int, workdir: Path, threads: int | None = None, *,
                  timezone: str = "UTC", encoding: str | None = None,
                  required: tuple[str, ...] = (), rejects: Path | None = None,
                  fmt: str = "common") -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    """A locked sandbox holding the validated missions of ``path``, and the counts.

    The working database is a file in ``workdir`` (deleted with that folder by the caller).
    """
    holder: dict[str, IngestReport] = {}

    def load(con: duckdb.DuckDBPyConnection) -> None:
        holder["report"] = ingest(con, path, year, timezone=timezone, encoding=encoding,
                                  workdir=workdir, required=required, rejects=rejects,
                                  fmt=fmt)

    con = open_sandbox(load, threads=threads, database=workdir / "missions.duckdb")
    return con, holder["report"]


def _write_rejects(con: duckdb.DuckDBPyConnection, path: Path, csv_lines: bool) -> None:
    """Every rejected row and every value set to NULL: row, line, mission id, column,
    reason, value and what was done. Stays on the node (it holds row-level data)."""
    line = "_row + 1" if csv_lines else "NULL"
    parts = [f"SELECT _row, {line} AS line, mission_id, _reject_column AS column_name, "
             "_reject_reason AS reason, _reject_value AS value, 'row rejected' AS action "
             "FROM checked WHERE _reject_reason IS NOT NULL"]
    parts += [f"SELECT _row, {line}, mission_id, '{c}', _why_{c}, _raw_{c}, 'value set to "
              f"empty' FROM checked WHERE _why_{c} IS NOT NULL AND _reject_reason IS NULL"
              for c in model.input_columns() if not model.is_required(c)]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    con.execute(f'COPY (SELECT _row AS "row", line, mission_id, column_name AS "column", '
                f"reason, value, action FROM ({' UNION ALL '.join(parts)}) "
                f"ORDER BY _row, column_name) TO {_lit(str(path))} (HEADER, DELIMITER ',')")
    path.chmod(0o600)


def ingest(con: duckdb.DuckDBPyConnection, path: Path, year: int, *, timezone: str = "UTC",
           encoding: str | None = None, workdir: Path | None = None,
           required: tuple[str, ...] = (), rejects: Path | None = None,
           fmt: str = "common") -> IngestReport:
    """Load ``path`` into ``con``; the valid rows, and nothing else, are the table
    ``missions``. Return what was rejected, set to NULL and found out of order.

    Runs before the sandbox is locked (it is the only step that reads a file).
    """
    if workdir is None:
        workdir = path.parent
    source = open_source(con, path, encoding=encoding, workdir=workdir, required=required,
                         fmt=fmt)
    types = {str(r[0]): str(r[1])
             for r in con.execute(f"DESCRIBE SELECT * FROM {source.sql}").fetchall()}
    try:
        con.execute(f"CREATE TABLE checked AS SELECT {missions_select()}, _row, _reject_reason, "
                    f"_reject_column, _reject_value, "
                    + ", ".join(f"_why_{c}, _raw_{c}" for c in model.input_columns())
                    + f" FROM ({checked_sql(source, types, year, timezone)})")
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    counts = con.execute("SELECT _reject_reason, count(*) FROM checked GROUP BY ALL").fetchall()
    by_reason = {str(r): int(n) for r, n in counts if r is not None}
    accepted = sum(int(n) for r, n in counts if r is None)
    optional = [c for c in model.input_columns() if not model.is_required(c)]
    nulled: dict[str, int] = {}
    for c in optional:
        for why, n in con.execute(f"SELECT _why_{c}, count(*) FROM checked WHERE _why_{c} IS "
                                  "NOT NULL AND _reject_reason IS NULL GROUP BY ALL").fetchall():
            nulled[str(why)] = int(n)
    # Each time against the latest recorded time before it in its chain (greatest() skips
    # NULLs), so a gap in the record does not hide a time that runs backwards.
    pairs = [(chain[i], chain[:i]) for chain in TIME_CHAINS for i in range(1, len(chain))]
    order = con.execute("SELECT " + ", ".join(
        f"count(*) FILTER ({t} < greatest({', '.join(before)}))" for t, before in pairs)
        + " FROM checked WHERE _reject_reason IS NULL").fetchone() or ()
    out_of_order = {f"{t} before an earlier step": int(n)
                    for (t, _), n in zip(pairs, order, strict=True) if n}
    if rejects is not None:
        _write_rejects(con, rejects, source.text_lines)
    # The sandbox then holds the valid rows only, as table ``missions``: rejected rows are
    # deleted, not hidden behind a view, so nothing a spec could reach holds them. (DELETE
    # marks rows; it does not copy the table.)
    con.execute("DELETE FROM checked WHERE _reject_reason IS NOT NULL")
    for extra in ["_row", "_reject_reason", "_reject_column", "_reject_value",
                  *(f"_why_{c}" for c in model.input_columns()),
                  *(f"_raw_{c}" for c in model.input_columns())]:
        con.execute(f"ALTER TABLE checked DROP COLUMN {extra}")
    con.execute("ALTER TABLE checked RENAME TO missions")
    return IngestReport(
        rows_read=accepted + sum(by_reason.values()), rows_accepted=accepted,
        rejected_by_reason=dict(sorted(by_reason.items())),
        missing_optional_columns=tuple(c for c in model.input_columns()
                                       if c not in source.columns),
        ignored_columns=source.ignored, nulled_by_reason=dict(sorted(nulled.items())),
        out_of_order=out_of_order,
        renamed_columns={h: c for c, h in source.columns.items() if h != c},
        encoding=source.encoding, rejects_file=rejects)
