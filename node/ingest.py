"""Read a country's mission file and validate it against the common model.

Validation is vectorised SQL in DuckDB: every row gets the first check it fails (missing
required value, unparseable value, value outside a code set or range, call outside the
reporting year), rejected rows are counted by that reason, and only clean, typed rows go
into table ``missions``. Input is Parquet or CSV; CSV is read as text and cast here, so a
bad value rejects its row instead of failing the whole file.

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


class InputError(ValueError):
    """The input file cannot be used at all (missing, wrong format, missing columns)."""


@dataclass(frozen=True)
class IngestReport:
    rows_read: int
    rows_accepted: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    missing_optional_columns: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()


def _source_sql(path: Path) -> str:
    p = str(path).replace("'", "''")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return f"read_parquet('{p}')"
    if suffix == ".csv":
        return f"read_csv('{p}', header = true, all_varchar = true)"
    raise InputError(f"{path}: unsupported input format {suffix!r}; use .parquet or .csv")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def reason_sql(present: set[str], year: int) -> str:
    """CASE expression naming the first failed check of a row, NULL for a valid row."""
    types = model.duckdb_types()
    whens: list[str] = []
    for col in model.columns():
        if model.is_required(col):
            expr = col if col in present else "NULL"
            whens.append(f"WHEN {expr} IS NULL THEN 'missing:{col}'")
    for col in model.columns():
        if col in present and types[col] != "VARCHAR":
            whens.append(f"WHEN {col} IS NOT NULL AND TRY_CAST({col} AS {types[col]}) IS NULL "
                         f"THEN 'unparseable:{col}'")
    for col, values in model.ENUMS.items():
        if col in present:
            allowed = ", ".join(_lit(v) for v in values)
            whens.append(f"WHEN {col} IS NOT NULL AND CAST({col} AS VARCHAR) NOT IN ({allowed}) "
                         f"THEN 'invalid_code:{col}'")
    for col, (lo, hi) in model.RANGES.items():
        if col in present:
            whens.append(f"WHEN TRY_CAST({col} AS DOUBLE) NOT BETWEEN {lo} AND {hi} "
                         f"THEN 'out_of_range:{col}'")
    whens.append(f"WHEN year(TRY_CAST(call_received AS TIMESTAMP)) <> {int(year)} "
                 "THEN 'outside_period'")
    return "CASE " + " ".join(whens) + " END"


def _typed_select(present: set[str]) -> str:
    """The input columns cast to their model types (absent optional columns all NULL)."""
    types = model.duckdb_types()
    cols = []
    for col in model.input_columns():
        source = col if col in present else "NULL"  # absent optional column: all NULL
        cols.append(f"TRY_CAST({source} AS {types[col]}) AS {col}")
    return ", ".join(cols)


def missions_select() -> str:
    """Every model column in model order, over the typed input columns: derived and
    completed columns by their rule (``model.DERIVED``, ``model.COMPLETED``)."""
    types = model.duckdb_types()
    rules = {**model.DERIVED, **model.COMPLETED}
    return ", ".join(f"CAST(({rules[col]}) AS {types[col]}) AS {col}" if col in rules else col
                     for col in model.columns())


def open_missions(path: Path, year: int, workdir: Path, threads: int | None = None
                  ) -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    """A locked sandbox holding the validated missions of ``path``, and the counts.

    The working database is a file in ``workdir`` (deleted with that folder by the caller).
    """
    holder: dict[str, IngestReport] = {}

    def load(con: duckdb.DuckDBPyConnection) -> None:
        holder["report"] = ingest(con, path, year)

    con = open_sandbox(load, threads=threads, database=workdir / "missions.duckdb")
    return con, holder["report"]


def ingest(con: duckdb.DuckDBPyConnection, path: Path, year: int) -> IngestReport:
    """Load ``path`` into ``con``; the valid rows, and nothing else, are the table
    ``missions``. Return counts by reject reason.

    Runs before the sandbox is locked (it is the only step that reads a file).
    """
    if not path.is_file():
        raise InputError(f"input file {path} does not exist: check 'data' in node.toml")
    source = _source_sql(path)
    try:
        present_cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    present = set(present_cols) & set(model.input_columns())
    missing_required = [c for c in model.input_columns()
                        if model.is_required(c) and c not in present]
    if missing_required:
        raise InputError(f"{path} lacks required column(s) {missing_required}; the common "
                         "model is described in docs/information-model.md")
    # One pass over the file: typed values, derived columns and the reject reason side by
    # side; the specs see only the valid rows, through the view ``missions``.
    try:
        con.execute(f"CREATE TABLE checked AS SELECT {missions_select()}, _reject_reason "
                    f"FROM (SELECT {_typed_select(present)}, "
                    f"{reason_sql(present, year)} AS _reject_reason FROM {source})")
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    counts = con.execute("SELECT _reject_reason, count(*) FROM checked GROUP BY ALL").fetchall()
    # The sandbox then holds the valid rows only, as table ``missions``: rejected rows are
    # deleted, not hidden behind a view, so nothing a spec could reach holds them. (DELETE
    # marks rows; it does not copy the table.)
    con.execute("DELETE FROM checked WHERE _reject_reason IS NOT NULL")
    con.execute("ALTER TABLE checked DROP COLUMN _reject_reason")
    con.execute("ALTER TABLE checked RENAME TO missions")
    by_reason = {str(r): int(n) for r, n in counts if r is not None}
    accepted = sum(int(n) for r, n in counts if r is None)
    return IngestReport(
        rows_read=accepted + sum(by_reason.values()), rows_accepted=accepted,
        rejected_by_reason=dict(sorted(by_reason.items())),
        missing_optional_columns=tuple(c for c in model.input_columns() if c not in present),
        ignored_columns=tuple(c for c in present_cols if c not in present))
