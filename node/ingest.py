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

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from emsbench import model
from emsbench.sandbox import open_sandbox
from node.console import watching
from node.source import UTC_OFFSET, InputError, Source, literal, open_source, quote

__all__ = ["InputError", "IngestReport", "ingest", "open_missions"]



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
    # accepted rows with a value, per input column (completeness)
    completeness: dict[str, int] = field(default_factory=dict)
    # per month of the call ("01".."12", "unknown"): (rows read, rows accepted)
    by_month: dict[str, tuple[int, int]] = field(default_factory=dict)


# Times in the order a mission happens: none may precede a recorded time before it.
TIME_CHAINS: tuple[tuple[str, ...], ...] = (
    ("call_ring_start", "call_answered"),
    ("call_received", "unit_notified", "unit_en_route", "arrived_scene", "at_patient",
     "left_scene", "at_destination"))


def _typed(col: str, raw: str, source_type: str, tz: str) -> str:
    """``raw`` as the model type of ``col``; a time with a UTC offset (text ending in ``Z``
    or ``+01:00``, or a TIMESTAMPTZ column) is converted to local time in ``tz``."""
    target = model.duckdb_types()[col]
    if target == "TIMESTAMP":
        zone = literal(tz)
        if source_type.startswith("TIMESTAMP WITH TIME ZONE"):
            return f"timezone({zone}, {raw})"
        if source_type == "VARCHAR":
            return (f"CASE WHEN regexp_matches(trim({raw}), {literal(UTC_OFFSET)}) "
                    f"THEN timezone({zone}, TRY_CAST(trim({raw}) AS TIMESTAMPTZ)) "
                    f"ELSE TRY_CAST({raw} AS TIMESTAMP) END")
    if col in model.ENUMS:
        # A code is matched whatever its case and surrounding spaces ('Urban ', 'u1'), and
        # written as the code set writes it; anything else stays as it was, to be counted.
        whens = " ".join(f"WHEN {literal(code.lower())} THEN {literal(code)}"
                         for code in model.ENUMS[col])
        text = f"CAST({raw} AS VARCHAR)"
        return f"CASE lower(trim({text})) {whens} ELSE {text} END"
    return f"TRY_CAST({raw} AS {target})"


def _why(col: str, raw: str, typed: str) -> str:
    """The first check ``raw`` fails, as ``reason:column``; NULL when it passes or is NULL."""
    whens = []
    if model.duckdb_types()[col] != "VARCHAR":
        whens.append(f"WHEN ({typed}) IS NULL THEN 'unparseable:{col}'")
    if col in model.ENUMS:
        allowed = ", ".join(literal(v) for v in model.ENUMS[col])
        whens.append(f"WHEN ({typed}) NOT IN ({allowed}) THEN 'invalid_code:{col}'")
    if col in model.RANGES:
        lo, hi = model.RANGES[col]
        whens.append(f"WHEN ({typed}) NOT BETWEEN {lo} AND {hi} THEN 'out_of_range:{col}'")
    if not whens:
        return "NULL"
    return f"CASE WHEN {raw} IS NULL THEN NULL {' '.join(whens)} END"


def _row_number(source: Source) -> str:
    """The input row number (1-based): Parquet says it for free; for other readers it is
    counted in reading order (DuckDB keeps insertion order)."""
    if source.sql.startswith("read_parquet("):
        return "file_row_number + 1"
    return "row_number() OVER ()"


def checked_sql(source: Source, source_types: dict[str, str], year: int, tz: str) -> str:
    """One pass over the input, in three projections that DuckDB streams (nothing in them
    is stored but the last): each value typed once; why it fails its checks; then the final
    value (NULL where an optional value failed), the row's reject reason (a required field
    missing or failing, a call outside the year), its column and raw value, and the list of
    optional values set to empty (reason, column, raw value) for the rejects file."""
    typed_cols, why_cols = ["_row"], ["_row"]
    for col in model.input_columns():
        header = source.columns.get(col)
        if header is None:
            typed_cols.append(f"CAST(NULL AS {model.duckdb_types()[col]}) AS _t_{col}, "
                              f"CAST(NULL AS VARCHAR) AS _r_{col}")
            why_cols.append(f"_t_{col}, _r_{col}, CAST(NULL AS VARCHAR) AS _w_{col}")
            continue
        raw = quote(header)
        typed_cols.append(f"{_typed(col, raw, source_types[header], tz)} AS _t_{col}, "
                          f"{raw} AS _r_{col}")
        why_cols.append(f"_t_{col}, _r_{col}, {_why(col, f'_r_{col}', f'_t_{col}')} AS _w_{col}")
    required = [c for c in model.input_columns() if model.is_required(c)]
    optional = [c for c in model.input_columns() if not model.is_required(c)]
    outside = f"year(_t_call_received) <> {int(year)}"
    reason = "CASE " + " ".join(
        [f"WHEN _w_{c} IS NOT NULL THEN _w_{c} WHEN _t_{c} IS NULL THEN 'missing:{c}'"
         for c in required] + [f"WHEN {outside} THEN 'outside_period'"]) + " END"
    column = "CASE " + " ".join(
        [f"WHEN _w_{c} IS NOT NULL OR _t_{c} IS NULL THEN '{c}'" for c in required]
        + [f"WHEN {outside} THEN 'call_received'"]) + " END"
    value = "CASE " + " ".join(
        [f"WHEN _w_{c} IS NOT NULL THEN CAST(_r_{c} AS VARCHAR)" for c in required]
        + [f"WHEN {outside} THEN CAST(_t_call_received AS VARCHAR)"]) + " END"
    nulled = "list_filter([" + ", ".join(
        f"CASE WHEN _w_{c} IS NOT NULL THEN {{'c': '{c}', 'r': _w_{c}, "
        f"'v': CAST(_r_{c} AS VARCHAR)}} END" for c in optional) + "], lambda x: x IS NOT NULL)"
    final = ", ".join(f"CASE WHEN _w_{c} IS NULL THEN _t_{c} END AS {c}"
                      for c in model.input_columns())
    return (f"SELECT _row, {final}, {reason} AS _reject_reason, {column} AS _reject_column, "
            f"{value} AS _reject_value, {nulled} AS _nulled FROM ("
            f"SELECT {', '.join(why_cols)} FROM ("
            f"SELECT {', '.join(typed_cols)} FROM ("
            f"SELECT {_row_number(source)} AS _row, * FROM {source.sql})))")


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
                  fmt: str = "common", progress: Callable[[str], None] | None = None
                  ) -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    """A locked sandbox holding the validated missions of ``path``, and the counts.

    The working database is a file in ``workdir`` (deleted with that folder by the caller).
    """
    holder: dict[str, IngestReport] = {}

    def load(con: duckdb.DuckDBPyConnection) -> None:
        holder["report"] = ingest(con, path, year, timezone=timezone, encoding=encoding,
                                  workdir=workdir, required=required, rejects=rejects,
                                  fmt=fmt, progress=progress)

    con = open_sandbox(load, threads=threads, database=workdir / "missions.duckdb")
    return con, holder["report"]


def _write_rejects(con: duckdb.DuckDBPyConnection, path: Path, csv_lines: bool) -> None:
    """Every rejected row and every value set to NULL: row, line, mission id, column,
    reason, value and what was done. Stays on the node (it holds row-level data)."""
    line = "_row + 1" if csv_lines else "NULL"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    con.execute(
        f'COPY (SELECT _row AS "row", {line} AS line, mission_id, c AS "column", r AS reason, '
        "v AS value, a AS action FROM ("
        "SELECT _row, mission_id, _reject_column AS c, _reject_reason AS r, "
        "_reject_value AS v, 'row rejected' AS a FROM checked "
        "WHERE _reject_reason IS NOT NULL UNION ALL "
        "SELECT _row, mission_id, x.c, x.r, x.v, 'value set to empty' FROM ("
        "SELECT _row, mission_id, unnest(_nulled) AS x FROM checked "
        "WHERE _reject_reason IS NULL AND len(_nulled) > 0)) "
        f"ORDER BY _row, c) TO {literal(str(path))} (HEADER, DELIMITER ',')")
    path.chmod(0o600)


def ingest(con: duckdb.DuckDBPyConnection, path: Path, year: int, *, timezone: str = "UTC",
           encoding: str | None = None, workdir: Path | None = None,
           required: tuple[str, ...] = (), rejects: Path | None = None,
           fmt: str = "common", progress: Callable[[str], None] | None = None
           ) -> IngestReport:
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
    watch = (watching(con, f"reading and validating {path.name}", progress) if progress
             else nullcontext())
    try:
        with watch:
            con.execute(f"CREATE TABLE checked AS SELECT {missions_select()}, _row, "
                        "_reject_reason, "
                        "_reject_column, _reject_value, _nulled "
                        f"FROM ({checked_sql(source, types, year, timezone)})")
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    # A mission id seen before in the file: the first accepted occurrence is kept. A narrow
    # pass over the stored table (a window over the whole row would buffer every column).
    con.execute("UPDATE checked SET _reject_reason = 'duplicate:mission_id', "
                "_reject_column = 'mission_id', _reject_value = mission_id "
                "WHERE _row IN (SELECT _row FROM (SELECT _row, row_number() OVER "
                "(PARTITION BY mission_id ORDER BY _row) AS n FROM checked "
                "WHERE _reject_reason IS NULL) WHERE n > 1)")
    counts = con.execute("SELECT _reject_reason, count(*) FROM checked GROUP BY ALL").fetchall()
    by_reason = {str(r): int(n) for r, n in counts if r is not None}
    accepted = sum(int(n) for r, n in counts if r is None)
    nulled = {str(why): int(n) for why, n in con.execute(
        "SELECT x.r, count(*) FROM (SELECT unnest(_nulled) AS x FROM checked "
        "WHERE _reject_reason IS NULL AND len(_nulled) > 0) GROUP BY ALL").fetchall()}
    # Each time against the latest recorded time before it in its chain (greatest() skips
    # NULLs), so a gap in the record does not hide a time that runs backwards.
    pairs = [(chain[i], chain[:i]) for chain in TIME_CHAINS for i in range(1, len(chain))]
    order = con.execute("SELECT " + ", ".join(
        f"count(*) FILTER ({t} < greatest({', '.join(before)}))" for t, before in pairs)
        + " FROM checked WHERE _reject_reason IS NULL").fetchone() or ()
    out_of_order = {f"{t} before an earlier step": int(n)
                    for (t, _), n in zip(pairs, order, strict=True) if n}
    filled = con.execute("SELECT " + ", ".join(f"count({c})" for c in model.input_columns())
                         + " FROM checked WHERE _reject_reason IS NULL").fetchone() or ()
    completeness = dict(zip(model.input_columns(), map(int, filled), strict=True))
    months = con.execute("SELECT coalesce(strftime(call_received, '%m'), 'unknown') AS m, "
                         "count(*), count(*) FILTER (_reject_reason IS NULL) FROM checked "
                         "GROUP BY m ORDER BY m").fetchall()
    if rejects is not None:
        _write_rejects(con, rejects, source.text_lines)
    # The sandbox then holds the valid rows only, as table ``missions``: rejected rows are
    # deleted, not hidden behind a view, so nothing a spec could reach holds them. (DELETE
    # marks rows; it does not copy the table.)
    con.execute("DELETE FROM checked WHERE _reject_reason IS NOT NULL")
    for extra in ("_row", "_reject_reason", "_reject_column", "_reject_value", "_nulled"):
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
        encoding=source.encoding, rejects_file=rejects, completeness=completeness,
        by_month={str(m): (int(r), int(a)) for m, r, a in months})
