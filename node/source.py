"""Open a country's input file for reading: its format, its text encoding, its headers.

A national export rarely matches the common model to the letter, and every mismatch used to
damage data silently. Here a header is matched to a model column case- and
accent-insensitively (``Urbanicity``, ``URBANICITY`` and ``urbanicitý`` are ``urbanicity``);
a header that is not a model column but close to one is an error with a "did you mean",
since it would otherwise leave that column empty. A CSV file must be UTF-8 unless
``encoding`` says otherwise; a file in another encoding is re-encoded to UTF-8 in the
node's working folder (exactly, with Python's codec, not guessed by the reader), and a file
that is not what it claims stops with a message naming the encoding, line and byte.
"""

from __future__ import annotations

import codecs
import difflib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from emsbench import model


class InputError(ValueError):
    """The input file cannot be used at all (missing, wrong format, missing columns)."""


@dataclass(frozen=True)
class Source:
    """The SQL that reads the input, and how its headers map to model columns."""

    sql: str
    columns: dict[str, str]  # model column → its column name in ``sql``
    ignored: tuple[str, ...]  # input fields that are no model column
    encoding: str
    origin: dict[str, str] = field(default_factory=dict)  # model column → native field
    text_lines: bool = False  # row n is line n + 1 of one text file (header on line 1)


def normal_header(name: str) -> str:
    """``" Ankomst Åsted "`` → ``ankomst_asted``: lower case, accents and spacing folded."""
    text = unicodedata.normalize("NFKD", name.strip().lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "_".join(text.replace("-", " ").replace(".", " ").split())


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# A time written with its UTC offset ("…Z", "…+01:00"): the node converts it to local time.
UTC_OFFSET = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def literal(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled), for the reader SQL the node
    builds before its sandbox is locked."""
    return "'" + value.replace("'", "''") + "'"


def check_utf8(path: Path) -> None:
    """Raise InputError naming line and byte if ``path`` is not UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                with path.open("rb") as again:
                    head = again.read(at)
                line = head.count(b"\n") + 1
                byte = chunk[exc.start]
                guess = bytes([byte]).decode("cp1252", errors="replace")
                raise InputError(
                    f"{path} is not UTF-8: byte 0x{byte:02X} on line {line} (in Windows-1252 "
                    f"that is {guess!r}). Nordic exports are often Windows-1252 (ANSI): set "
                    f'encoding = "windows-1252" in node.toml, or save the file as UTF-8') from None
            offset += len(chunk)


def transcode(path: Path, encoding: str, workdir: Path) -> Path:
    """``path`` re-encoded from ``encoding`` to UTF-8, in ``workdir`` (streamed)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} in node.toml; use e.g. utf-8, "
                         "windows-1252, iso-8859-1 or utf-16") from None
    # Named after the work database, so the node's workspace removes it with the rest.
    out = workdir / "missions.duckdb.input-utf8.csv"
    line = 1
    try:
        with path.open("r", encoding=encoding, newline="") as src, \
                out.open("w", encoding="utf-8", newline="") as dst:
            for text in src:
                dst.write(text)
                line += 1
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not {encoding}: {exc.reason} on line {line}; check "
                         "encoding in node.toml") from None
    return out


def _reader(path: Path, encoding: str | None, workdir: Path) -> tuple[str, str]:
    """DuckDB table expression reading ``path``, and the encoding it was read with."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        # file_row_number: the row number for the rejects file, without a window.
        return f"read_parquet({literal(str(path))}, file_row_number = true)", "parquet"
    if suffix not in (".csv", ".txt"):
        raise InputError(f"{path}: unsupported input format {suffix!r}; use .parquet or .csv")
    wanted = (encoding or "utf-8").lower().replace("_", "-")
    if wanted in ("utf-8", "utf8", "utf-8-sig"):
        check_utf8(path)
        text, used = path, "utf-8"
    else:
        text, used = transcode(path, wanted, workdir), wanted
    # Text only: every value is cast (and checked) by the node, never guessed by the reader.
    return f"read_csv({literal(str(text))}, header = true, all_varchar = true)", used


def _missing(columns: dict[str, str], required: tuple[str, ...]) -> list[str]:
    needed = [c for c in model.input_columns() if model.is_required(c)]
    for col in required:  # a derived column needs the input columns its rule reads
        rule = model.DERIVED.get(col)
        needed += [c for c in model.input_columns() if rule and c in rule] if rule else [col]
    return [c for c in dict.fromkeys(needed) if c not in columns]


def match_headers(headers: list[str], where: str, required: tuple[str, ...] = (),
                  kind: str = "file") -> tuple[dict[str, str], list[str]]:
    """Match input ``headers`` to the model's input columns (case-, accent- and
    spacing-insensitively): the model column → header map, and the headers that are no
    model column. A header close to a model column, two headers for one column or a
    missing required column stop with one InputError starting with ``where``; ``kind``
    names what holds the columns (a file, a table)."""
    wanted = {normal_header(c): c for c in model.input_columns()}
    columns: dict[str, str] = {}
    ignored: list[str] = []
    problems: list[str] = []
    for header in headers:
        col = wanted.get(normal_header(header))
        if col is None:
            ignored.append(header)
        elif col in columns:
            problems.append(f"columns {columns[col]!r} and {header!r} are both {col!r}")
        else:
            columns[col] = header
    # DuckDB renames a repeated header ("URBANICITY" after "Urbanicity") to "URBANICITY_1".
    normal = {normal_header(h) for h in headers}
    for header in ignored:
        base, _, n = header.rpartition("_")
        if n.isdigit() and normal_header(base) in normal and normal_header(base) in wanted:
            problems.append(f"columns {columns[wanted[normal_header(base)]]!r} and "
                            f"{base!r} are both {wanted[normal_header(base)]!r}")
    unmatched = [c for c in model.input_columns() if c not in columns]
    for header in ignored:
        near = difflib.get_close_matches(normal_header(header), unmatched, n=1, cutoff=0.8)
        if near:
            problems.append(f"column {header!r} is not in the common model; did you mean "
                            f"{near[0]!r}? Rename the column in the {kind}")
    missing = _missing(columns, required)
    if missing:
        problems.append(f"required column(s) {missing} are missing (the model requires some; "
                        "the catalogue stratifies on the others); the common model is "
                        "described in docs/information-model.md")
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems))
    return columns, ignored


def open_source(con: duckdb.DuckDBPyConnection, path: Path, *, encoding: str | None,
                workdir: Path, required: tuple[str, ...] = (), fmt: str = "common") -> Source:
    """Describe the input and match its headers to the model's input columns.

    ``required`` are columns the run cannot do without besides the model's required ones
    (the columns the catalogue stratifies on): missing, they stop the run. ``fmt`` names
    the input format (``node.adapters.FORMATS``)."""
    from node.adapters import adapter

    try:
        module = adapter(fmt)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if module is not None:
        source: Source = module.source(con, path, fmt=fmt, encoding=encoding,
                                       workdir=workdir)
        missing = _missing(source.columns, required)
        if missing:
            raise InputError(f"{path} ({fmt}): required column(s) {missing} cannot be filled "
                             "from this export (the model requires some; the catalogue "
                             "stratifies on the others)")
        return source
    if not path.is_file():
        raise InputError(f"input file {path} does not exist: check 'data' in node.toml")
    sql, used = _reader(path, encoding, workdir)
    try:
        headers = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()
                   if not (r[0] == "file_row_number" and used == "parquet")]
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path} ({used}): {str(exc).splitlines()[0]}") from exc
    columns, ignored = match_headers(headers, str(path), required)
    return Source(sql, columns, tuple(ignored), used, text_lines=used != "parquet")
