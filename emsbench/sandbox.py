"""Sandboxed DuckDB: where indicator SQL runs.

A sandbox is an in-memory DuckDB connection that first receives the mission table, then has
external access switched off and its configuration locked. After that no statement can read
or write files, attach databases, or install or load extensions, so a spec cannot move rows
anywhere; the only way out of the node is the aggregate the engine reads back. A memory limit
(set before the lock) and a time limit per query bound what any spec can cost. What a spec
may say at all is decided before any of this, by the closed language of
``emsbench.spec_language``; validation and the node open their sandboxes with this one
function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from emsbench import model


class SandboxError(RuntimeError):
    """Spec SQL failed inside the sandbox (including refused file or extension access)."""


def _empty_missions() -> pa.Table:
    return model.arrow_schema().empty_table()


# Defence in depth behind the spec language (which admits no join, subquery or string
# building): no spec query may hold more memory or run longer than these.
MEMORY_LIMIT = "1GB"
QUERY_TIMEOUT_SECONDS = 600.0


def open_sandbox(load: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
                 *, threads: int | None = None, database: Path | None = None,
                 memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Open a connection, let ``load`` create table ``missions``, then lock it down.

    ``load`` runs before the lock, so it may read the node's input file, and must create
    ``missions`` (a table or view); without it an empty ``missions`` table with the model's
    columns is created (for checking specs).
    ``database`` is a file for the working data (the caller deletes it afterwards): DuckDB
    then keeps only what it works on in memory, so memory does not grow with the rows.
    """
    con = duckdb.connect(str(database) if database else ":memory:")
    if database:
        # The file is scratch space thrown away after the run: writing a checkpoint of the
        # whole table on close would double the I/O and the memory for nothing.
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute("SET checkpoint_threshold = '1TB'")
    con.execute("SET enable_progress_bar = false")
    # Set before the lock, so no spec can raise it; with a file, DuckDB spills past it.
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if load is None:
        con.register("_empty", _empty_missions())
        con.execute("CREATE TABLE missions AS SELECT * FROM _empty")
        con.unregister("_empty")
    else:
        load(con)
    lock(con)
    return con


def lock(con: duckdb.DuckDBPyConnection) -> None:
    """Switch off file, network and extension access for good on this connection."""
    con.execute("SET enable_external_access = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET lock_configuration = true")


def query(con: duckdb.DuckDBPyConnection, sql: str, what: str,
          timeout: float = QUERY_TIMEOUT_SECONDS) -> list[tuple[object, ...]]:
    """Run one query in the sandbox, interrupted after ``timeout`` seconds; errors name
    ``what`` (e.g. the spec id)."""
    timer = threading.Timer(timeout, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        return con.execute(sql).fetchall()
    except duckdb.PermissionException as exc:
        raise SandboxError(f"{what}: refused by the sandbox (spec SQL may not touch files, "
                           f"network or extensions): {exc}") from exc
    except duckdb.InterruptException as exc:
        raise SandboxError(f"{what}: stopped after {timeout:g} s (the sandbox's time limit "
                           "per query)") from exc
    except duckdb.Error as exc:
        raise SandboxError(f"{what}: SQL failed: {exc}") from exc
    finally:
        timer.cancel()
