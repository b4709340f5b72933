"""Input format ``postgresql``: read the missions from a table, view or query of a PostgreSQL
server, where a national authority keeps its registry.

The rows must already be in the common model (one column per model column, matched to the
model like the headers of a CSV file: ``node.source.match_headers``). They are read in bulk
as Arrow record batches over the binary COPY protocol (the ADBC PostgreSQL driver, libpq
inside), never row by row in Python, and streamed by DuckDB into a Parquet file in the
node's working folder (so a large registry is never held in memory whole). That happens
before the sandbox is locked; the validating pass then reads that file like any other
Parquet input. Only the columns that are model columns are fetched: the rest
of the registry table never reaches the node.

``node.toml``::

    format = "postgresql"
    data = "postgresql://emsbench@registry.example.no:5432/ems"   # a libpq URL
    table = "registry.missions"     # or: query = "SELECT ... FROM ... WHERE ..."
    password_file = "secrets/pg"    # optional; default libpq's: PGPASSWORD, ~/.pgpass

The password never goes into ``node.toml`` (a URL that holds one is refused): libpq finds it
in ``PGPASSWORD``, ``~/.pgpass`` (or ``passfile=`` in the URL), or it is read from
``password_file`` (mode 0600, like ``.pgpass``). Every other libpq URL parameter works
(``sslmode=verify-full``, ``host=/var/run/postgresql`` for a socket ...). A server that
cannot be reached, a refused login, a missing table or a failing query stops with one line
naming host, database and table and what to check.

The rows keep the server's order (a table's physical order; ``query`` with ``ORDER BY``
fixes it), which decides which of two rows with the same ``mission_id`` is kept.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path, PosixPath
from typing import Any, TypeGuard
from urllib.parse import parse_qs, quote, unquote, urlsplit

import duckdb

from node.source import InputError, Source, literal, match_headers
from node.workspace import WORK_DATABASE

DESCRIPTION = "a table, view or query in the common model on a PostgreSQL server"

SCHEMES = ("postgresql", "postgres")
# A table as SQL names it: table, schema.table or database.schema.table, each part a plain
# identifier (folded to lower case by the server, as in SQL) or a "quoted" one.
_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_TABLE = re.compile(rf"{_PART}(?:\.{_PART}){{0,2}}")
# Arrow types the node reads as they come; any other server type (numeric, uuid, enum,
# interval, json ...) is sent as text and parsed by the node like a CSV value.
_KEPT_TYPES = ("string", "large_string", "bool", "int8", "int16", "int32", "int64",
               "float", "double", "date32", "timestamp")
# In the node's working folder, named as a companion of the working database so that the
# run removes it with that file when it ends (and a crashed run's copy when the next starts).
STAGE_FILE = f"{WORK_DATABASE}.postgresql-input.parquet"
# libpq waits for ever for a host that drops packets; a node run should say why instead.
CONNECT_TIMEOUT_SECONDS = 15


class DatabaseURL(PosixPath):
    """``data`` of a database input: the URL exactly as written, and what to read there.

    It is a Path because the flow hands the adapter ``NodeConfig.data`` and nothing else;
    as a Path the URL would lose its ``//``, so ``str()`` gives the URL, and the table,
    query and password file travel with it. Never opened as a file."""

    url: str = ""
    table: str = ""
    query: str = ""
    password_file: Path | None = None

    @classmethod
    def of(cls, url: str, *, table: str = "", query: str = "",
           password_file: Path | str | None = None) -> DatabaseURL:
        made = cls(url)
        made.url, made.table, made.query = url, table, query
        made.password_file = Path(password_file) if password_file else None
        return made

    def __str__(self) -> str:
        # Paths derived from this one (``.parent``) carry no URL: they print as paths.
        return self.url or super().__str__()

    def __fspath__(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        what = f"table={self.table!r}" if self.table else f"query={self.query!r}"
        return f"DatabaseURL({self.url!r}, {what})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Path pickles (and deep-copies) from its folded parts: keep URL and options.
        return (_rebuild, (self.url, self.table, self.query, self.password_file))

    def __eq__(self, other: object) -> bool:
        if not self.url:
            return super().__eq__(other)
        return isinstance(other, DatabaseURL) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key()) if self.url else super().__hash__()

    def _key(self) -> tuple[str, str, str, str]:
        return (self.url, self.table, self.query, str(self.password_file or ""))

    @property
    def name(self) -> str:
        """What is read, for the node's log: ``registry.missions in ems on db.example:5432``."""
        if not self.url:
            return super().name
        where = _where(self.url)
        return f"{self.table or 'query'} in {where['database']} on {where['host']}"


def _rebuild(url: str, table: str, query: str, password_file: Path | None) -> DatabaseURL:
    return DatabaseURL.of(url, table=table, query=query, password_file=password_file)


def is_url(value: object) -> TypeGuard[str]:
    """Whether ``value`` is written as a URL (``scheme://...``), not a file path."""
    return isinstance(value, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


def url_problems(url: DatabaseURL) -> list[str]:
    """What is wrong with a configured database input (empty: nothing), for node.toml."""
    problems = []
    parts = urlsplit(url.url)
    if parts.scheme not in SCHEMES:
        problems.append(f"data {redact(url.url)!r}: format postgresql reads a "
                        "postgresql://user@host:port/database URL")
    if _password_in_url(url.url):
        problems.append("data holds a password: take it out of node.toml and give it as "
                        "PGPASSWORD, in ~/.pgpass or in password_file")
    if bool(url.table) == bool(url.query):
        problems.append("format postgresql needs either table (e.g. table = "
                        '"registry.missions") or query (a SELECT), not both')
    elif url.table and not _TABLE.fullmatch(url.table):
        problems.append(f"table {url.table!r} is not a table name: write it as in SQL, "
                        'e.g. missions, registry.missions or "Registry"."Missions"')
    return problems


def _password_in_url(url: str) -> bool:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return ":" in userinfo or "password" in parse_qs(parts.query)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
    return parts._replace(netloc=f"{userinfo}{at}{hosts}", query=query).geturl()


def _where(url: str) -> dict[str, str]:
    """Host, database and user a libpq URL names (libpq's defaults where it names none)."""
    parts = urlsplit(url)
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = params.get("user") or unquote(userinfo.split(":", 1)[0]) or "(your login name)"
    host = params.get("host") or unquote(hosts) or "localhost (the default socket)"
    if params.get("port") and ":" not in host:
        host = f"{host}:{params['port']}"
    database = params.get("dbname") or unquote(parts.path.lstrip("/")) or user
    return {"host": host, "database": database, "user": user}


def _connect_uri(url: DatabaseURL) -> str:
    """The URI handed to libpq: the configured one, with a connect timeout unless it sets
    one, and the password of ``password_file`` if there is one (never logged)."""
    extra = {}
    if "connect_timeout" not in parse_qs(urlsplit(url.url).query):
        extra["connect_timeout"] = str(CONNECT_TIMEOUT_SECONDS)
    if url.password_file is not None:
        extra["password"] = _read_password(url.password_file)
    if not extra:
        return url.url
    joined = "&".join(f"{k}={quote(v, safe='')}" for k, v in extra.items())
    return url.url + ("&" if urlsplit(url.url).query else "?") + joined


def _read_password(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read password_file {path}: {exc.strerror}") from None
    # As libpq does with ~/.pgpass: a password others can read is no secret.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"password_file {path} can be read by others (mode "
                         f"{stat.S_IMODE(mode):04o}): chmod 600 {path}")
    password = text.rstrip("\r\n")
    if not password:
        raise InputError(f"password_file {path} is empty")
    return password


def _reason(exc: Exception) -> str:
    """The server's or libpq's own words, on one line, without the driver's framing."""
    text = str(exc)
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)
    text = text.split("\nQuery was:")[0].split(". SQLSTATE:")[0]
    text = re.sub(r"(Failed to (connect|prepare query|execute query)): ", "", text)
    text = re.sub(r"\b(ERROR|FATAL):\s+", "", text)
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith(("LINE", "CONTEXT"))]
    return " ".join(ln for ln in lines if set(ln) != {"^"}).rstrip(".")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _sqlstate(exc: Exception) -> str:
    state = getattr(exc, "sqlstate", None)
    if state:
        return str(state)
    found = re.search(r"SQLSTATE: ([0-9A-Z]{5})", str(exc))
    return found.group(1) if found else ""



def _quote_pg(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def source(con: duckdb.DuckDBPyConnection, path: Path, *, fmt: str = "",
           encoding: str | None, workdir: Path) -> Source:
    """Copy the model columns of the configured table or query into ``workdir`` (a Parquet
    file) and describe them. ``path`` is the ``DatabaseURL`` of ``node.toml``;
    ``encoding`` does not apply (the driver returns UTF-8 text)."""
    if not isinstance(path, DatabaseURL):
        raise InputError(f"{path}: format postgresql reads from a server: data must be a "
                         "postgresql://user@host:port/database URL, with table or query "
                         "(a node.adapters.postgres.DatabaseURL)")
    problems = url_problems(path)
    if problems:
        raise InputError(f"{redact(path.url)}: " + "; ".join(problems))
    where = _where(path.url)
    what = f"table {path.table}" if path.table else "the query in node.toml"
    place = (f"{what} in database {where['database']!r} on {where['host']} "
             f"(user {where['user']})")
    uri = _connect_uri(path)
    staged = workdir / STAGE_FILE

    # Imported here: only a node that reads PostgreSQL loads the driver.
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as pg

    try:
        conn = pg.connect(uri)
    except adbc_driver_manager.Error as exc:
        raise InputError(
            f"cannot connect to PostgreSQL for {place}: {_sentence(_reason(exc))} Check that "
            "the server runs and accepts connections there (host, port and database in "
            "'data' in node.toml) and the password (PGPASSWORD, ~/.pgpass or password_file)"
        ) from None
    # The newline ends a trailing '--' comment of the query before the closing parenthesis.
    base = path.table if path.table else f"({path.query.strip().rstrip(';')}\n) AS _query"
    try:
        with conn, conn.cursor() as cur:
            try:
                # The node only reads: a query cannot change the registry, and the probe and
                # the copy see one snapshot (so the same columns and types).
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # The column names and types, without reading a row.
                cur.execute(f"SELECT * FROM {base} LIMIT 0")
                schema = cur.fetch_arrow_table().schema
                headers = list(schema.names)
                columns, ignored = match_headers(headers, place, kind="table")
                fields = [schema.field(h) for h in columns.values()]
                select = ", ".join(
                    _quote_pg(f.name) if str(f.type).split("[")[0] in _KEPT_TYPES
                    else f"{_quote_pg(f.name)}::text AS {_quote_pg(f.name)}" for f in fields)
                cur.execute(f"SELECT {select} FROM {base}")
                reader = cur.fetch_record_batch()
                # Streamed batch by batch into a Parquet file in the working folder (0700,
                # removed with the working database), not into a table: a table would stay
                # in the sandbox beside ``missions``, rejected rows and all, where the node
                # keeps nothing but the valid rows. DESCRIBE and the validating pass both
                # read the file, which the sandbox's lock then puts out of reach of spec
                # SQL, and the server connection closes as soon as the copy is done.
                con.register("_postgresql_stream", reader)
                try:
                    con.execute(f"COPY (SELECT * FROM _postgresql_stream) TO "
                                f"{literal(str(staged))} (FORMAT parquet, COMPRESSION zstd)")
                finally:
                    con.unregister("_postgresql_stream")
            except adbc_driver_manager.Error as exc:
                raise InputError(_query_failed(exc, place, path)) from None
    except duckdb.Error as exc:
        # The server stopped the copy part way (an error in a row: a failing cast or
        # function, a write refused; or the connection was lost).
        text = " ".join(str(exc).split())
        said = re.search(r"\b(?:ERROR|FATAL):\s*(.*)", text)
        reason = re.split(r"\s(?:CONTEXT|LINE \d+):", said.group(1) if said else text)[0]
        key = "table" if path.table else "query"
        raise InputError(f"cannot read {place}: the server stopped sending rows: "
                         f"{reason.rstrip('.')} (check '{key}' in node.toml)") from None
    return Source(f"read_parquet({literal(str(staged))}, file_row_number = true)", columns,
                  tuple(ignored), "postgresql", origin=dict(columns), text_lines=False)


def _query_failed(exc: Exception, place: str, url: DatabaseURL) -> str:
    state, reason = _sqlstate(exc), _reason(exc)
    if state in ("42P01", "3F000"):  # undefined table, undefined schema
        return (f"cannot read {place}: {_sentence(reason)} Check 'table' in node.toml (name "
                "the schema if the table is not on the user's search_path, e.g. "
                "registry.missions)")
    if state == "42501":  # insufficient privilege
        return (f"cannot read {place}: {_sentence(reason)} The database user needs SELECT on it "
                "(GRANT SELECT ... TO that user)")
    key = "table" if url.table else "query"
    return f"cannot read {place}: {reason} (SQLSTATE {state or '?'}); check '{key}' in node.toml"
