"""The node's PostgreSQL input (``format = "postgresql"``), against a real server.

A session fixture starts a throwaway PostgreSQL cluster (initdb into a temporary folder,
``pg_ctl start`` on a free loopback port with its socket in that folder, password logins
over TCP), loads synthetic common-model missions into it with real column types, and stops
and deletes it at the end. ``scripts/postgres.sh`` (run by ``scripts/setup.sh``) installs
the server programs. Without them the tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emsbench import model
from node.adapters.postgres import STAGE_FILE, DatabaseURL
from node.config import NodeConfig, load_node_config, write_node_config
from node.ingest import IngestReport, open_missions
from node.keys import keygen
from node.source import InputError
from node.synth.generator import generate

YEAR = 2025
ROWS = 20_000
PG_TYPES = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "BOOLEAN": "boolean",
            "INTEGER": "integer"}
# The server runs as someone else when the tests run as root (initdb refuses root):
# scripts/postgres.sh creates "emsbench"; Debian's package brings "postgres".
SERVER_USERS = ("emsbench", "postgres", "nobody")
DB_USER, DATABASE = "emsbench", "ems"


def _bindir() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/N/bin)."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if found:
        return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    root: Path
    port: int
    password_file: Path  # the superuser's password, mode 0600, owned by the test process

    def url(self, database: str = DATABASE, user: str = DB_USER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def source(self, table: str = "", query: str = "", **kw: Any) -> DatabaseURL:
        return DatabaseURL.of(kw.pop("url", self.url()), table=table, query=query,
                              password_file=kw.pop("password_file", self.password_file))

    def sql(self, *statements: str, database: str = DATABASE) -> None:
        import adbc_driver_postgresql.dbapi as pg

        password = self.password_file.read_text(encoding="utf-8").strip()
        uri = self.url(database).replace(f"{DB_USER}@", f"{DB_USER}:{password}@")
        with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def load(self, table: str, data: pa.Table) -> None:
        """``data`` into a new ``table`` with the model's column types (timestamp,
        boolean, integer, text), in bulk through Arrow (binary COPY)."""
        import adbc_driver_postgresql.dbapi as pg

        types = model.duckdb_types()
        ddl = ", ".join(f'"{c}" {PG_TYPES[types[c]]}' for c in data.column_names)
        schema, _, name = table.rpartition(".")
        self.sql(f"CREATE SCHEMA IF NOT EXISTS {schema or 'public'}",
                 f"CREATE TABLE {table} ({ddl})")
        password = self.password_file.read_text(encoding="utf-8").strip()
        uri = self.url().replace(f"{DB_USER}@", f"{DB_USER}:{password}@")
        with pg.connect(uri) as conn, conn.cursor() as cur:
            cur.adbc_ingest(name, data, mode="append", db_schema_name=schema or "public")
            conn.commit()


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.fail("running as root and no unprivileged user to run PostgreSQL as: "
                "run scripts/postgres.sh")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster with database ``ems``, deleted at the end."""
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        reason = ("PostgreSQL server programs not found (/usr/lib/postgresql/*/bin/initdb): "
                  "run scripts/postgres.sh")
        if _in_ci():
            pytest.fail(f"{reason} (CI is set: a missing server is a failure, not a skip)")
        pytest.skip(reason)
    user = _server_user()
    run_as = ["runuser", "-u", user, "--"] if user else []
    # Not under pytest's tmp folders: those are private to root, and the server runs as
    # ``user``. The socket lives here too (short path: sockets have a length limit).
    root = Path(tempfile.mkdtemp(prefix="emsbench-pg-"))
    data = root / "data"
    password_file = root / "password"
    password_file.write_text("s3cret-for-tests\n", encoding="utf-8")
    password_file.chmod(0o600)
    server_pw = root / "initdb-password"
    shutil.copy(password_file, server_pw)
    if user:
        uid = pwd.getpwnam(user)
        os.chown(root, uid.pw_uid, uid.pw_gid)
        os.chown(server_pw, uid.pw_uid, uid.pw_gid)
    started = False
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", DB_USER,
                        f"--pwfile={server_pw}", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
                       check=True, capture_output=True, text=True)
        for _attempt in range(5):  # another process may take the free port first
            port = _free_port()
            options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c full_page_writes=off -c synchronous_commit=off")
            run = subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l",
                                  str(root / "server.log"), "-o", options, "-w", "-t", "60",
                                  "start"], capture_output=True, text=True)
            if run.returncode == 0:
                started = True
                break
        if not started:
            log = (root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {run.stderr}\n{log}")
        cluster = Cluster(root, port, password_file)
        cluster.sql(f"CREATE DATABASE {DATABASE}", database="postgres")
        yield cluster
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"initdb failed: {exc.stderr}")
    finally:
        if started:
            subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                            "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def missions_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pg-data") / "NO-2025.parquet"
    generate("NO", YEAR, path, rows=ROWS, seed=31)
    return path


@pytest.fixture(scope="session")
def registry(pg_cluster: Cluster, missions_parquet: Path) -> Cluster:
    """The cluster, with the synthetic missions as ``registry.missions``."""
    pg_cluster.load("registry.missions", pq.read_table(missions_parquet))
    return pg_cluster


def _counts(report: IngestReport) -> tuple[Any, ...]:
    return (report.rows_read, report.rows_accepted, report.rejected_by_reason,
            report.nulled_by_reason, report.out_of_order, report.missing_optional_columns,
            report.ignored_columns, report.renamed_columns)


def _rows(con: Any) -> pa.Table:
    return con.sql("SELECT * FROM missions ORDER BY mission_id").to_arrow_table()


def test_the_server_holds_real_column_types(registry: Cluster) -> None:
    import adbc_driver_postgresql.dbapi as pg

    password = registry.password_file.read_text(encoding="utf-8").strip()
    with pg.connect(registry.url().replace("emsbench@", f"emsbench:{password}@")) as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'registry' AND table_name = 'missions'")
        types = dict(cur.fetchall())
    assert types["call_received"] == "timestamp without time zone"
    assert types["lights_sirens"] == "boolean" and types["patient_age"] == "integer"
    assert types["mission_id"] == "text"


def test_a_table_reads_exactly_as_the_same_rows_in_parquet(
        registry: Cluster, missions_parquet: Path, tmp_path: Path) -> None:
    """Same counts by reason, same valid rows, same types: the server is only a transport."""
    (tmp_path / "pg").mkdir()
    (tmp_path / "pq").mkdir()
    con_pg, from_pg = open_missions(registry.source("registry.missions"), YEAR,
                                    tmp_path / "pg", timezone="Europe/Oslo",
                                    fmt="postgresql")
    con_pq, from_pq = open_missions(missions_parquet, YEAR, tmp_path / "pq",
                                    timezone="Europe/Oslo", fmt="common")
    try:
        assert from_pg.rows_read == ROWS
        assert _counts(from_pg) == _counts(from_pq)
        assert from_pg.rejected_by_reason  # the synthetic data holds rows to reject
        assert from_pg.encoding == "postgresql"
        assert _rows(con_pg).equals(_rows(con_pq))
        types = dict(con_pg.execute("SELECT column_name, column_type FROM "
                                    "(DESCRIBE missions)").fetchall())
        assert types == model.duckdb_types()
        # The view over the staged file and the rejected rows' numbers, nothing else
        # (tests/node/test_ingest.py).
        objects = con_pg.execute("SELECT table_name FROM duckdb_tables() UNION ALL SELECT "
                                 "view_name FROM duckdb_views() WHERE NOT internal "
                                 "ORDER BY 1").fetchall()
        assert objects == [("_excluded",), ("missions",)]
    finally:
        con_pg.close()
        con_pq.close()


def test_a_query_with_renamed_odd_typed_and_extra_columns(
        registry: Cluster, missions_parquet: Path, tmp_path: Path) -> None:
    """Headers match like CSV headers (case-insensitive); numeric and timestamptz columns
    are read (a time with a zone becomes the centre's local time again); a column that is
    no model column is not even fetched."""
    registry.sql(
        "CREATE TABLE registry.export AS SELECT mission_id AS \"Mission_ID\", "
        "call_received AT TIME ZONE 'Europe/Oslo' AS \"CALL_RECEIVED\", urgency_level, "
        "service_type, urbanicity, region, destination_type, transported, "
        "patient_age::numeric(5,1) AS patient_age, '01017012345'::text AS personnummer "
        "FROM registry.missions")
    query = ("SELECT * FROM registry.export WHERE \"CALL_RECEIVED\" < '2025-07-01 00:00+02' "
             "ORDER BY \"Mission_ID\";")
    con, report = open_missions(registry.source(query=query), YEAR, tmp_path,
                                timezone="Europe/Oslo", fmt="postgresql")
    try:
        assert report.renamed_columns == {"Mission_ID": "mission_id",
                                          "CALL_RECEIVED": "call_received"}
        assert report.ignored_columns == ("personnummer",)
        staged = pq.read_schema(tmp_path / STAGE_FILE)
        assert "personnummer" not in staged.names
        got = con.execute("SELECT mission_id, call_received, patient_age FROM missions"
                          ).fetchall()
        lo, hi = model.RANGES["patient_age"]  # outside: emptied by the node
        expected = {m: (t, a if a is not None and lo <= a <= hi else None)
                    for m, t, a in duckdb.sql("SELECT mission_id, call_received, patient_age "
                                              f"FROM read_parquet('{missions_parquet}')"
                                              ).fetchall()}
        assert 0.4 * ROWS < len(got) < 0.6 * ROWS
        # A synthetic local time in the spring-forward gap (02:xx on 30 March does not
        # exist in Oslo) comes back an hour later: the server moved it when the test made
        # it a time with a zone.
        gap = (datetime(2025, 3, 30, 2), datetime(2025, 3, 30, 3))
        bad = [(m, t, a, expected[m]) for m, t, a in got
               if expected[m] != (t, a) and not gap[0] <= expected[m][0] < gap[1]]
        assert not bad, bad[:5]
        assert max(t for _, t, _ in got).month <= 6
    finally:
        con.close()


def test_a_misspelt_column_is_an_error_with_did_you_mean(registry: Cluster,
                                                        tmp_path: Path) -> None:
    registry.sql("CREATE TABLE registry.misspelt AS SELECT * FROM registry.missions LIMIT 10",
                 "ALTER TABLE registry.misspelt RENAME COLUMN urbanicity TO urbancity")
    with pytest.raises(InputError, match=r"'urbancity' is not in the common model; did you "
                                         r"mean 'urbanicity'\? Rename the column in the table"):
        open_missions(registry.source("registry.misspelt"), YEAR, tmp_path, fmt="postgresql")


def _error(source: DatabaseURL, tmp_path: Path) -> str:
    with pytest.raises(InputError) as info:
        open_missions(source, YEAR, tmp_path, fmt="postgresql")
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_an_unreachable_server_is_one_clear_line(registry: Cluster, tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    message = _error(registry.source("registry.missions", url=registry.url().replace(
        str(registry.port), str(port))), tmp_path)
    assert message.startswith("cannot connect to PostgreSQL for table registry.missions in "
                              f"database 'ems' on 127.0.0.1:{port} (user emsbench): ")
    assert "Connection refused" in message and "Check that the server runs" in message


def test_a_missing_table_a_wrong_password_and_no_grant_say_what_to_check(
        registry: Cluster, tmp_path: Path) -> None:
    message = _error(registry.source("registry.nope"), tmp_path)
    assert message.startswith("cannot read table registry.nope in database 'ems' on "
                              f"127.0.0.1:{registry.port} (user emsbench): ")
    assert 'relation "registry.nope" does not exist' in message
    assert "Check 'table' in node.toml" in message

    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n", encoding="utf-8")
    wrong.chmod(0o600)
    message = _error(registry.source("registry.missions", password_file=wrong), tmp_path)
    assert "password authentication failed" in message and "password_file" in message

    wrong.chmod(0o644)
    message = _error(registry.source("registry.missions", password_file=wrong), tmp_path)
    assert "can be read by others (mode 0644): chmod 600" in message

    registry.sql("CREATE ROLE clerk LOGIN PASSWORD 'clerk-pw'")
    clerk = tmp_path / "clerk"
    clerk.write_text("clerk-pw", encoding="utf-8")
    clerk.chmod(0o600)
    message = _error(registry.source("registry.missions", password_file=clerk,
                                     url=registry.url(user="clerk")), tmp_path)
    assert "permission denied" in message and "GRANT SELECT" in message


def test_a_query_only_reads(registry: Cluster, tmp_path: Path) -> None:
    """The node's transaction is read-only; a trailing comment does not break the query."""
    registry.sql("CREATE TABLE registry.victim AS SELECT 1 AS x",
                 "CREATE FUNCTION registry.wipe() RETURNS integer LANGUAGE sql AS "
                 "'DELETE FROM registry.victim RETURNING x'")
    message = _error(registry.source(query="SELECT *, registry.wipe() AS w FROM "
                                           "registry.missions"), tmp_path)
    assert message.startswith("cannot read the query in node.toml in database 'ems'")
    assert message.endswith("the server stopped sending rows: cannot execute DELETE in a "
                            "read-only transaction (check 'query' in node.toml)")
    work = tmp_path / "w"
    work.mkdir()
    con, report = open_missions(registry.source(
        query="SELECT * FROM registry.missions -- every mission"), YEAR, work,
        fmt="postgresql")
    con.close()
    assert report.rows_read == ROWS


def test_the_password_can_come_from_pgpassword(registry: Cluster, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", registry.password_file.read_text().strip())
    con, report = open_missions(registry.source("registry.missions", password_file=None),
                                YEAR, tmp_path, fmt="postgresql")
    con.close()
    assert report.rows_read == ROWS


# node.toml


def _toml(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "cfg" / "node.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text('[node]\ncountry = "NO"\nyear = 2025\nkey = "NO.pem"\noutbox = "out"\n'
                    + extra, encoding="utf-8")
    return path


def test_config_keeps_the_url_as_written_and_resolves_password_file(tmp_path: Path) -> None:
    url = "postgresql://reader@db.example.no:5433/ems?sslmode=verify-full&application_name=n"
    cfg = load_node_config(_toml(tmp_path, f'format = "postgresql"\ndata = "{url}"\n'
                                           'table = "registry.missions"\n'
                                           'password_file = "secrets/pg"\n'))
    assert isinstance(cfg.data, DatabaseURL) and str(cfg.data) == url
    assert cfg.data.table == cfg.table == "registry.missions"
    assert cfg.password_file == (tmp_path / "cfg").resolve() / "secrets" / "pg"
    assert cfg.data.password_file == cfg.password_file
    assert cfg.data.name == "registry.missions in ems on db.example.no:5433"
    again = tmp_path / "again.toml"
    write_node_config(again, cfg)
    back = load_node_config(again)
    assert str(back.data) == url and back.data == cfg.data and back.table == cfg.table
    socket_url = "postgresql:///ems?host=/var/run/postgresql"
    cfg = load_node_config(_toml(tmp_path, f'format = "postgresql"\ndata = "{socket_url}"\n'
                                           'query = "SELECT * FROM m"\n'))
    assert str(cfg.data) == socket_url and cfg.data.name.endswith("on /var/run/postgresql")


@pytest.mark.parametrize(("extra", "message"), [
    ('format = "postgresql"\ndata = "postgresql://h/db"\n', "either table"),
    ('format = "postgresql"\ndata = "postgresql://h/db"\ntable = "m"\nquery = "SELECT 1"\n',
     "not both"),
    ('format = "postgresql"\ndata = "postgresql://u:pw@h/db"\ntable = "m"\n',
     "data holds a password"),
    ('format = "postgresql"\ndata = "postgresql://h/db?password=x"\ntable = "m"\n',
     "data holds a password"),
    ('format = "postgresql"\ndata = "postgresql://h/db"\ntable = "m; DROP TABLE m"\n',
     "is not a table name"),
    ('format = "postgresql"\ndata = "m.parquet"\ntable = "m"\n', "data must be a postgresql"),
    ('format = "postgresql"\ndata = "mysql://h/db"\ntable = "m"\n', "postgresql://user@host"),
    ('data = "postgresql://h/db"\ntable = "m"\n', 'set format = "postgresql"'),
    ('data = "m.parquet"\ntable = "m"\n', 'are for format = "postgresql"'),
])
def test_config_mistakes_are_named(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load_node_config(_toml(tmp_path, extra))
    assert "pw@" not in str(info.value)


def test_a_config_made_in_python_round_trips(tmp_path: Path) -> None:
    cfg = NodeConfig(country="NO", year=2025, format="postgresql", key=Path("NO.pem"),
                     outbox=Path("out"), data=DatabaseURL.of("postgresql://h//db", table="m"))
    assert cfg.table == "m" and str(cfg.data) == "postgresql://h//db"
    write_node_config(tmp_path / "n.toml", cfg)
    assert load_node_config(tmp_path / "n.toml").data == cfg.data


# The whole node


def test_the_node_flow_runs_on_a_postgresql_registry(
        registry: Cluster, tmp_path: Path, prefect_harness: None,
        cli: Callable[..., Any]) -> None:
    from node.flow import run_node

    keygen(tmp_path / "NO.pem")
    shutil.copy(registry.password_file, tmp_path / "pg-password")
    (tmp_path / "pg-password").chmod(0o600)
    config = tmp_path / "node.toml"
    config.write_text(
        '[node]\ncountry = "NO"\nyear = 2025\nformat = "postgresql"\n'
        f'data = "{registry.url()}"\ntable = "registry.missions"\n'
        'password_file = "pg-password"\nkey = "NO.pem"\noutbox = "outbox"\nreview = false\n',
        encoding="utf-8")
    result = run_node(config)
    assert result.ingest is not None and result.ingest.rows_read == ROWS
    assert result.delivery is None and result.outbox_file.exists()
    assert result.submission.country == "NO" and result.submission.revision == 1
    assert list((tmp_path / "work").iterdir()) == []  # the staged copy went with the run

    # A server that is down stops the run with one line saying what to check.
    down = config.read_text(encoding="utf-8").replace(f":{registry.port}/",
                                                      f":{_free_port()}/")
    config.write_text(down, encoding="utf-8")
    failed = cli("node", "run", "--config", str(config))
    assert failed.code != 0
    assert "cannot connect to PostgreSQL for table registry.missions" in failed.error
