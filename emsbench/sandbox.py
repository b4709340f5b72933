"""Sandboxed DuckDB: where indicator SQL runs.

A sandbox is an in-memory DuckDB connection that first receives the mission table (or a
view reading the node's input), then has external access switched off and its
configuration locked. After that no statement can write files, attach databases, or
install or load extensions, and the only files it can read are the ones named before the
lock (``readable``: the node's input and working folder), so a spec cannot move rows
anywhere; the only way out of the node is the aggregate the engine reads back. A memory
limit and a spill folder (set before the lock) and a time limit per query bound what any
spec can cost. What a spec may say at all is decided before any of this, by the closed
language of ``emsbench.spec_language``, which names no file and no table; validation and
the node open their sandboxes with this one function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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
                 *, threads: int | None = None, memory_limit: str = MEMORY_LIMIT,
                 spill: Path | None = None, readable: Sequence[Path] = (),
                 readable_folders: Sequence[Path] = ()) -> duckdb.DuckDBPyConnection:
    """Open a connection, let ``load`` create ``missions``, then lock it down.

    ``load`` runs before the lock, so it may read the node's input file, and must create
    ``missions`` (a table or view); without it an empty ``missions`` table with the model's
    columns is created (for checking specs). ``readable`` files and ``readable_folders``
    stay readable after the lock (a view over the input reads it when queried); nothing
    else does. Past ``memory_limit`` DuckDB spills to ``spill`` (the caller deletes it).
    """
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    # Set before the lock, so no spec can raise them.
    con.execute(f"SET memory_limit = {_text(memory_limit)}")
    if spill is not None:
        spill.mkdir(parents=True, exist_ok=True, mode=0o700)
        con.execute(f"SET temp_directory = {_text(str(spill))}")
    if readable:
        con.execute(f"SET allowed_paths = [{', '.join(_text(str(p)) for p in readable)}]")
    if readable_folders:
        con.execute("SET allowed_directories = ["
                    + ", ".join(_text(str(p)) for p in readable_folders) + "]")
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


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
