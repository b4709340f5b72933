"""Read a country's mission file and validate it against the common model, damaging nothing
silently.

Validation is vectorised SQL in DuckDB (``node.source`` opens the input and matches its
headers), and nothing is copied: the sandbox's ``missions`` is a view that reads the input
as a query runs, only the columns the query needs, checks again the rule that rejects a
row, and leaves out duplicate ids by their row numbers. A Parquet file is read where it
is; any other input is staged once as a Parquet file in the working folder (``stage``), so
every pass reads the same rows with the same numbers. ``ingest`` reads the input three
times before the catalogue's own scan: for the rows with a problem, for the mission ids
(hashed, ``_mark_duplicates``) and for the months of the calls.

Every value is checked against its column (parses as its type, in its code set, in its
range); a value with an explicit UTC offset is converted to the
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

import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from emsbench import model
from emsbench.sandbox import MEMORY_LIMIT, open_sandbox
from node.console import watching
from node.source import UTC_OFFSET, InputError, Source, literal, open_source, quote
from node.workspace import WORK_DATABASE

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
# Each time against the latest recorded time before it in its chain (greatest() skips
# NULLs), so a gap in the record does not hide a time that runs backwards.
ORDER_PAIRS = [(chain[i], chain[:i]) for chain in TIME_CHAINS for i in range(1, len(chain))]


def _final(col: str) -> str:
    """A column's value in ``checked_sql``'s innermost projections (NULL if it failed)."""
    return f"(CASE WHEN _w_{col} IS NULL THEN _t_{col} END)"


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
        # Anything that is no code stays as it was, to be counted.
        return _code(col, raw, source_type, otherwise=f"CAST({raw} AS VARCHAR)")
    if source_type == target:
        return raw  # a typed column cannot fail to parse as its own type
    return f"TRY_CAST({raw} AS {target})"


def _code(col: str, raw: str, source_type: str, otherwise: str) -> str:
    """``raw`` as a code of ``col``'s code set, matched whatever its case and surrounding
    spaces ('Urban ', 'u1') and written as the code set writes it; ``otherwise`` when it is
    no code. A code written as the set writes it (nearly every value) is taken at once:
    only the others pay for the string work of folding."""
    text = raw if source_type == "VARCHAR" else f"CAST({raw} AS VARCHAR)"
    codes = ", ".join(literal(c) for c in model.ENUMS[col])
    folded = " ".join(f"WHEN {literal(c.lower())} THEN {literal(c)}" for c in model.ENUMS[col])
    return (f"CASE WHEN {raw} IS NULL THEN NULL WHEN {text} IN ({codes}) THEN {text} "
            f"ELSE (CASE lower(trim({text})) {folded} ELSE {otherwise} END) END")


def _why(col: str, raw: str, typed: str, source_type: str = "VARCHAR") -> str:
    """The first check ``raw`` fails, as ``reason:column``; NULL when it passes or is NULL."""
    whens = []
    target = model.duckdb_types()[col]
    if target != "VARCHAR" and source_type != target:
        whens.append(f"WHEN ({typed}) IS NULL THEN 'unparseable:{col}'")
    if col in model.ENUMS:
        allowed = ", ".join(literal(v) for v in model.ENUMS[col])
        if source_type == "VARCHAR":  # a code as written (nearly all): nothing to check
            whens.append(f"WHEN {raw} IN ({allowed}) THEN NULL")
        whens.append(f"WHEN ({typed}) NOT IN ({allowed}) THEN 'invalid_code:{col}'")
    if col in model.RANGES:
        lo, hi = model.RANGES[col]
        whens.append(f"WHEN ({typed}) NOT BETWEEN {lo} AND {hi} THEN 'out_of_range:{col}'")
    if not whens:
        return "NULL"
    return f"CASE WHEN {raw} IS NULL THEN NULL {' '.join(whens)} END"


STAGED_FILE = f"{WORK_DATABASE}.input.parquet"


def numbered(source: Source) -> str:
    """The input with its row number ``_row`` (1-based), the same in every pass."""
    if "file_row_number" not in source.sql:
        raise ValueError("the input must be staged first: its rows have no stable number")
    return f"SELECT file_row_number + 1 AS _row, * FROM {source.sql}"


def stage(con: duckdb.DuckDBPyConnection, source: Source, workdir: Path) -> Source:
    """The source as one that reads the same rows in the same order every time. A Parquet
    file numbers its rows; a CSV file or a join of tables is written once, as read (DuckDB
    keeps the reading order), to a Parquet file in the working folder, removed after the
    run with the other working files (``node.workspace``)."""
    if "file_row_number" in source.sql:
        return source
    staged = workdir / STAGED_FILE
    con.execute(f"COPY (SELECT * FROM {source.sql}) TO {literal(str(staged))} "
                "(FORMAT parquet, COMPRESSION zstd)")
    return replace(source, sql=f"read_parquet({literal(str(staged))}, file_row_number = true)")


def checked_sql(source: Source, source_types: dict[str, str], year: int, tz: str,
                with_raw: bool = False) -> str:
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
        why_cols.append(f"_t_{col}, _r_{col}, "
                        f"{_why(col, f'_r_{col}', f'_t_{col}', source_types[header])} AS _w_{col}")
    required = [c for c in model.input_columns() if model.is_required(c)]
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
    # Optional values that can fail a check: passed through for the rejects file's list
    # (``issues_sql``), which is built only for the rows that need it.
    nullable = _nullable(source, source_types)
    any_nulled = " OR ".join(f"_w_{c} IS NOT NULL" for c in nullable) or "false"
    final = ", ".join(f"CASE WHEN _w_{c} IS NULL THEN _t_{c} END AS {c}"
                      for c in model.input_columns())
    passed = "".join(f", _w_{c}, _r_{c}" for c in nullable)
    if with_raw:  # every raw value, for the issues table's list of columns with a value
        passed += "".join(f", _r_{c} AS _raw_{c}" for c in model.input_columns())
    # Accepted rows whose times run backwards are counted from the issues table too.
    any_order = " OR ".join(f"coalesce({_final(t)} < greatest({', '.join(map(_final, before))}), "
                            "false)" for t, before in ORDER_PAIRS)
    passed += f", ({any_order}) AS _any_order"
    return (f"SELECT _row, {final}, {reason} AS _reject_reason, {column} AS _reject_column, "
            f"{value} AS _reject_value, ({any_nulled}) AS _any_nulled{passed} FROM ("
            f"SELECT {', '.join(why_cols)} FROM ("
            f"SELECT {', '.join(typed_cols)} FROM ("
            f"{numbered(source)})))")


def values_sql(source: Source, source_types: dict[str, str], tz: str) -> str:
    """Every input column's value as the checks leave it (NULL where it fails one), with
    ``_row``, in one light projection for the passes over accepted rows: the same values as
    ``checked_sql``'s, without the reasons (a test holds the two equal)."""
    types = model.duckdb_types()
    cols = ["_row"]
    for col in model.input_columns():
        header = source.columns.get(col)
        if header is None:
            cols.append(f"CAST(NULL AS {types[col]}) AS {col}")
            continue
        raw, kind = quote(header), source_types[header]
        if col in model.ENUMS:
            cols.append(f"{_code(col, raw, kind, otherwise='NULL')} AS {col}")
            continue
        typed = _typed(col, raw, kind, tz)
        if col in model.RANGES:
            lo, hi = model.RANGES[col]
            cols.append(f"CASE WHEN ({typed}) BETWEEN {lo} AND {hi} THEN ({typed}) END AS {col}")
        else:
            cols.append(f"{typed} AS {col}")
    return f"SELECT {', '.join(cols)} FROM ({numbered(source)})"


def _nullable(source: Source, source_types: dict[str, str]) -> list[str]:
    """Optional input columns whose values can fail a check (and be set to empty)."""
    return [c for c in model.input_columns() if not model.is_required(c)
            and c in source.columns
            and _why(c, "x", "x", source_types[source.columns[c]]) != "NULL"]


def issues_sql(source: Source, source_types: dict[str, str], year: int, tz: str,
               where: str = "_reject_reason IS NOT NULL OR _any_nulled OR _any_order") -> str:
    """The rows with something to say (rejected, an optional value set to empty, times out
    of order): row number, mission id, month of the call, reject reason, column and raw
    value; the values set to empty (column, reason, raw value) for the rejects file; the
    times out of order; and the columns that hold a value (for completeness)."""
    nulled = "list_filter([" + ", ".join(
        f"CASE WHEN _w_{c} IS NOT NULL THEN {{'c': '{c}', 'r': _w_{c}, "
        f"'v': CAST(_r_{c} AS VARCHAR)}} END" for c in _nullable(source, source_types)
    ) + "], lambda x: x IS NOT NULL)"
    order = "list_filter([" + ", ".join(
        f"CASE WHEN {t} < greatest({', '.join(before)}) THEN '{t}' END"
        for t, before in ORDER_PAIRS) + "], lambda x: x IS NOT NULL)"
    present = "list_filter([" + ", ".join(
        f"CASE WHEN _raw_{c} IS NOT NULL THEN '{c}' END" for c in model.input_columns()
        if c in source.columns) + "], lambda x: x IS NOT NULL)"
    # The filter sits in a query of its own, so the lists are built after it, for few rows.
    return ("SELECT _row, mission_id, month(call_received) AS _month, _reject_reason, "
            f"_reject_column, _reject_value, {nulled} AS _nulled, {order} AS _order, "
            f"{present} AS _present FROM (SELECT * FROM "
            f"({checked_sql(source, source_types, year, tz, with_raw=True)}) WHERE {where})")


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
                  fmt: str = "common", progress: Callable[[str], None] | None = None,
                  memory_limit: str = MEMORY_LIMIT, spill: Path | None = None
                  ) -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    """A locked sandbox whose ``missions`` are the valid rows of ``path``, and the counts.

    Nothing is copied: ``missions`` is a view that reads and checks the input as a query
    runs (only the columns it needs), without the rows ``ingest`` rejected. The sandbox may
    read the input and its working folder (``workdir``) and nothing else; past
    ``memory_limit`` DuckDB spills to ``spill`` (default: a folder in ``workdir`` that
    ``node.workspace`` removes).
    """
    holder: dict[str, IngestReport] = {}

    def load(con: duckdb.DuckDBPyConnection) -> None:
        holder["report"] = ingest(con, path, year, timezone=timezone, encoding=encoding,
                                  workdir=workdir, required=required, rejects=rejects,
                                  fmt=fmt, progress=progress)

    is_file = isinstance(path, Path) and path.is_file()
    folders = [workdir] + ([path] if isinstance(path, Path) and path.is_dir() else [])
    con = open_sandbox(load, threads=threads, memory_limit=memory_limit,
                       spill=spill or workdir / f"{WORK_DATABASE}.spill",
                       readable=[path] if is_file else [], readable_folders=folders)
    return con, holder["report"]


def filled_in_file(con: duckdb.DuckDBPyConnection, source: Source) -> dict[str, int]:
    """Values present per model column in the whole input file, from the Parquet file's own
    statistics (values minus nulls per column chunk), so nothing is read; a column whose
    statistics lack null counts is counted."""
    found = re.match(r"read_parquet\('((?:[^']|'')*)'", source.sql)
    assert found, source.sql  # every source is a Parquet file by now (``stage``)
    file = literal(found.group(1).replace("''", "'"))
    stats = {str(name): (int(values), None if nulls is None else int(nulls))
             for name, values, nulls in con.execute(
                 "SELECT path_in_schema, sum(num_values), "
                 "CASE WHEN count(*) FILTER (stats_null_count IS NULL) = 0 "
                 "THEN sum(stats_null_count) END "
                 f"FROM parquet_metadata({file}) GROUP BY ALL").fetchall()}
    out, unknown = {}, []
    for col, header in source.columns.items():
        values, nulls = stats.get(header, (0, None))
        if nulls is None:
            unknown.append(col)
        else:
            out[col] = values - nulls
    if unknown:
        counted = con.execute("SELECT " + ", ".join(f"count({quote(source.columns[c])})"
                                                    for c in unknown)
                              + f" FROM {source.sql}").fetchall()[0]
        out.update(zip(unknown, map(int, counted), strict=True))
    return out


def _write_rejects(con: duckdb.DuckDBPyConnection, path: Path, csv_lines: bool) -> None:
    """Every rejected row and every value set to NULL: row, line, mission id, column,
    reason, value and what was done. Stays on the node (it holds row-level data)."""
    line = "_row + 1" if csv_lines else "NULL"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    con.execute(
        f'COPY (SELECT _row AS "row", {line} AS line, mission_id, c AS "column", r AS reason, '
        "v AS value, a AS action FROM ("
        "SELECT _row, mission_id, _reject_column AS c, _reject_reason AS r, "
        "_reject_value AS v, 'row rejected' AS a FROM _issues "
        "WHERE _reject_reason IS NOT NULL UNION ALL "
        "SELECT _row, mission_id, x.c, x.r, x.v, 'value set to empty' FROM ("
        "SELECT _row, mission_id, unnest(_nulled) AS x FROM _issues "
        "WHERE _reject_reason IS NULL)) "
        f"ORDER BY _row, c) TO {literal(str(path))} (HEADER, DELIMITER ',')")
    path.chmod(0o600)


def ingest(con: duckdb.DuckDBPyConnection, path: Path, year: int, *, timezone: str = "UTC",
           encoding: str | None = None, workdir: Path | None = None,
           required: tuple[str, ...] = (), rejects: Path | None = None,
           fmt: str = "common", progress: Callable[[str], None] | None = None
           ) -> IngestReport:
    """Make ``missions`` in ``con`` the valid rows of ``path`` (a view: nothing is copied)
    and return what was rejected and set to NULL, and what the accepted rows hold
    (completeness, times out of order, rows per month).

    Runs before the sandbox is locked. Three passes read the input, and none stores it:
    one finds every row with something to say (rejected, a value set to empty, times out of
    order: a narrow table of them, usually small); one reads the mission ids, for
    duplicates (``_mark_duplicates``); one the call times, for rows per month. Completeness
    is the file's own count of values (Parquet statistics) less those of rejected rows and
    values set to empty.
    """
    if workdir is None:
        workdir = path.parent
    source = stage(con, open_source(con, path, encoding=encoding, workdir=workdir,
                                    required=required, fmt=fmt), workdir)
    types = {str(r[0]): str(r[1])
             for r in con.execute(f"DESCRIBE SELECT * FROM {source.sql}").fetchall()}
    # Every pass from here aggregates or numbers its rows itself: keeping their order would
    # only make DuckDB hold rows back (at 200 M rows, the issues pass ran 3× slower).
    con.execute("SET preserve_insertion_order = false")
    watch = (watching(con, f"reading and validating {path.name}", progress) if progress
             else nullcontext())
    try:
        with watch:
            con.execute("CREATE TEMP TABLE _issues AS "
                        + issues_sql(source, types, year, timezone))
            total = _count(con, f"SELECT count(*) FROM ({numbered(source)})")
            _mark_duplicates(con, source, types, year, timezone, total)
            read_months = _months(con, source, types, timezone)
            in_file = filled_in_file(con, source)
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc

    def counted(sql: str) -> dict[str, int]:
        return {str(k): int(n) for k, n in con.execute(sql).fetchall()}

    rejected = "_reject_reason IS NOT NULL"
    by_reason = counted(f"SELECT _reject_reason, count(*) FROM _issues WHERE {rejected} "
                        "GROUP BY ALL")
    rejected_months = {_month(m): n for m, n in counted(
        f"SELECT _month, count(*) FROM _issues WHERE {rejected} GROUP BY ALL").items()}
    nulled = counted("SELECT x.r, count(*) FROM (SELECT unnest(_nulled) AS x FROM _issues "
                     "WHERE _reject_reason IS NULL) GROUP BY ALL")
    order = counted("SELECT x, count(*) FROM (SELECT unnest(_order) AS x FROM _issues "
                    "WHERE _reject_reason IS NULL) GROUP BY ALL")
    gone = counted(f"SELECT x, count(*) FROM (SELECT unnest(_present) AS x FROM _issues "
                   f"WHERE {rejected}) GROUP BY ALL")
    emptied: dict[str, int] = {}  # values set to empty per column ("reason:column" keys)
    for why, n in nulled.items():
        column = why.split(":", 1)[1]
        emptied[column] = emptied.get(column, 0) + n
    if rejects is not None:
        _write_rejects(con, rejects, source.text_lines)
    # The view keeps the rows whose required values pass (the rule that rejects, checked
    # again as it reads: cheaper than a join on 400,000 row numbers at 200 M rows) and
    # leaves out duplicate ids by row number. Only those row numbers stay: spec SQL
    # (expressions over one row of ``missions``) cannot name another table.
    con.execute("CREATE TEMP TABLE _excluded AS SELECT _row FROM _issues "
                "WHERE _reject_reason = 'duplicate:mission_id'")
    con.execute("DROP TABLE _issues")
    kept = accepted_where(year)
    if _count(con, "SELECT count(*) FROM _excluded"):
        kept += " AND _row NOT IN (SELECT _row FROM _excluded)"
    con.execute(f"CREATE TEMP VIEW missions AS SELECT {missions_select()} FROM "
                f"(SELECT * FROM ({values_sql(source, types, timezone)}) WHERE {kept})")
    accepted = total - sum(by_reason.values())
    months = {m: n - rejected_months.get(m, 0) for m, n in read_months.items()}
    if sum(read_months.values()) != total or min(months.values(), default=0) < 0:
        # one check that the passes agree
        raise RuntimeError(f"{sum(read_months.values()):,} rows by month, {total:,} in all")
    return IngestReport(
        rows_read=total, rows_accepted=accepted,
        rejected_by_reason=dict(sorted(by_reason.items())),
        missing_optional_columns=tuple(c for c in model.input_columns()
                                       if c not in source.columns),
        ignored_columns=source.ignored, nulled_by_reason=dict(sorted(nulled.items())),
        out_of_order={f"{t} before an earlier step": n for t, _ in ORDER_PAIRS
                      if (n := order.get(t, 0))},
        renamed_columns={h: c for c, h in source.columns.items() if h != c},
        encoding=source.encoding, rejects_file=rejects,
        completeness={c: in_file.get(c, 0) - gone.get(c, 0) - emptied.get(c, 0)
                      for c in model.input_columns()},
        by_month={m: (n, months[m]) for m, n in sorted(read_months.items())})


def _month(m: object) -> str:
    """A call's month as the report writes it: "01" … "12", or "unknown"."""
    return "unknown" if m in (None, "None", 0, "0") else f"{int(str(m)):02d}"


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def accepted_where(year: int) -> str:
    """The rule that rejects a row, as a filter on ``values_sql``'s columns (which are NULL
    where a value fails its check): every required value there, the call in the year."""
    return " AND ".join([f"{c} IS NOT NULL" for c in model.input_columns()
                         if model.is_required(c)] + [f"year(call_received) = {int(year)}"])


def _months(con: duckdb.DuckDBPyConnection, source: Source, types: dict[str, str],
            timezone: str) -> dict[str, int]:
    """Rows read per month of the call: one narrow pass over the call times."""
    header = source.columns["call_received"]
    received = _typed("call_received", quote(header), types[header], timezone)
    # coalesce: histogram() leaves NULLs out, and a row without a time is still read
    ((months,),) = con.execute(f"SELECT histogram(coalesce(month({received}), 0)) "
                               f"FROM {source.sql}").fetchall()
    return {_month(m): int(n) for m, n in (months or {}).items()}


# Duplicate ids are found on a 64-bit hash of the id (a GROUP BY of integers is about three
# times cheaper than one of the ids themselves: 3.5 s against 11.4 s at 50 M rows, which
# also typed every required value); the ids are compared exactly only for the rows whose
# hash is shared, so a collision of the hash never rejects a row (a test uses a weak hash).
ID_HASH = "hash({})"
# Ids one GROUP BY of hashes takes at DuckDB's memory limit of 512 MB: 200 M rows passed
# (783 MiB peak), 500 M ran out of memory (DuckDB keeps part of a spilled aggregate in
# memory). A larger input is split by hash into passes of at most this many rows, scaled
# with the limit: four passes at 500 M rows (three took 18 s each in a trial).
IDS_PER_PASS_AT_512MB = 150_000_000
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def id_passes(rows: int, memory_limit: str) -> int:
    """How many passes the duplicate check splits ``rows`` ids into, at DuckDB's
    ``memory_limit`` as DuckDB writes it ('488.2 MiB')."""
    number, _, unit = memory_limit.strip().partition(" ")
    limit = float(number) * _UNITS.get(unit, 1)
    per_pass = max(1, int(IDS_PER_PASS_AT_512MB * limit / 512e6))
    return max(1, -(-rows // per_pass))


def _mark_duplicates(con: duckdb.DuckDBPyConnection, source: Source, types: dict[str, str],
                     year: int, timezone: str, rows: int) -> None:
    """A mission id seen before among the accepted rows: the first occurrence is kept, the
    others are rejected (``_issues``). One pass reads only the ids, for the hashes held by
    more than one row (of all rows, accepted or not: a superset of the duplicates); only
    the rows with such a hash are checked again, exactly, among the accepted ones."""
    header = source.columns["mission_id"]
    ids = _typed("mission_id", quote(header), types[header], timezone)
    hashed = ID_HASH.format(ids)
    passes = id_passes(rows, str(con.execute("SELECT current_setting('memory_limit')")
                                 .fetchall()[0][0]))
    con.execute("CREATE TEMP TABLE _dup_hashes (h UBIGINT)")
    for part in range(passes):  # one id is always in the same pass: its hash chooses it
        where = f" AND ({hashed}) % {passes} = {part}" if passes > 1 else ""
        con.execute(f"INSERT INTO _dup_hashes SELECT {hashed} AS h FROM {source.sql} "
                    f"WHERE ({ids}) IS NOT NULL{where} GROUP BY h HAVING count(*) > 1")
    if _count(con, "SELECT count(*) FROM _dup_hashes"):
        shared = (f"SELECT _row, mission_id FROM ({values_sql(source, types, timezone)}) "
                  f"WHERE {ID_HASH.format('mission_id')} IN (SELECT h FROM _dup_hashes) "
                  f"AND {accepted_where(year)}")
        con.execute("CREATE TEMP TABLE _dups AS SELECT _row FROM (SELECT _row, row_number() "
                    f"OVER (PARTITION BY mission_id ORDER BY _row) AS n FROM ({shared})) "
                    "WHERE n > 1")
        if _count(con, "SELECT count(*) FROM _dups"):
            con.execute("INSERT INTO _issues " + issues_sql(
                source, types, year, timezone, where="_row IN (SELECT _row FROM _dups) "
                "AND _row NOT IN (SELECT _row FROM _issues)"))
            con.execute("UPDATE _issues SET _reject_reason = 'duplicate:mission_id', "
                        "_reject_column = 'mission_id', _reject_value = mission_id "
                        "WHERE _row IN (SELECT _row FROM _dups)")
        con.execute("DROP TABLE _dups")
    con.execute("DROP TABLE _dup_hashes")
