"""The operator's console: short progress lines on the terminal, the full log in a file.

Prefect logs every task to the terminal by default (about 20 lines for a good run, 85 with
two tracebacks for a failed one), which buries the few lines an operator needs. For the
node's commands the terminal gets only the node's own progress and summary (logger
``emsbench.node``); everything Prefect and the node log, tracebacks included, goes to the
node's log file, and still to the Prefect server for its UI. ``--debug`` puts Prefect's
console output back.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

CONSOLE = "emsbench.node"
# Prefect's console handler sits on the root logger (flow and task run records propagate to
# it) and on uvicorn's and fastapi's (its temporary server); the file handler goes where
# the records are.
_CONSOLE_LOGGERS = ("", "uvicorn", "fastapi", "prefect._internal")
_FILE_LOGGERS = ("prefect",)  # flow and task run records propagate to it
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# The file handler of the last ``setup``: a process that runs several commands (tests, a
# long-lived server) replaces it instead of writing every record to every log it opened.
_installed: list[logging.Handler] = []


def say(message: str) -> None:
    """One progress line for the operator (and the log file)."""
    logging.getLogger(CONSOLE).info(message)


def _install(log_file: Path, level: int) -> logging.Handler:
    """A handler writing to ``log_file``, in place of the last one installed, on the loggers
    where the records go (the console logger is the caller's to set)."""
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(level)
    for old in _installed:
        for name in (*_FILE_LOGGERS, CONSOLE):
            logging.getLogger(name).removeHandler(old)
        old.close()
    _installed[:] = [handler]
    for name in _FILE_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    return handler


def setup(log_file: Path, debug: bool = False) -> Path:
    """Send the node's and Prefect's log records to ``log_file``; the terminal keeps the
    node's progress lines only (everything, with ``debug``). Return the log file."""
    import prefect.logging  # noqa: F401 - makes Prefect configure its loggers first

    if not debug:
        for name in _CONSOLE_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                # Prefect's console handlers are StreamHandlers; its API handler (for the
                # UI) is not, and keeps working.
                if isinstance(handler, logging.StreamHandler) and not isinstance(
                        handler, logging.FileHandler):
                    handler.setLevel(logging.CRITICAL + 1)
    file_handler = _install(log_file, logging.DEBUG if debug else logging.INFO)
    console = logging.getLogger(CONSOLE)
    console.setLevel(logging.INFO)
    console.propagate = False
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter("%(message)s"))
    console.handlers = [terminal, file_handler]
    return log_file


def log_to(log_file: Path) -> None:
    """Write the node's and Prefect's log records to ``log_file`` too, unless ``setup``
    already does; the terminal is left as it is. For a flow run that ``node serve`` starts:
    Prefect runs it in a process of its own, where no command set up the node's log."""
    # as FileHandler names its file: resolve() would differ under a symlinked folder and
    # replace setup's handler (with its --debug level) by a second one
    target = os.path.abspath(log_file)
    if any(getattr(h, "baseFilename", None) == target for h in _installed):
        return
    console = logging.getLogger(CONSOLE)
    console.addHandler(_install(log_file, logging.INFO))
    console.setLevel(logging.INFO)


@contextmanager
def watching(con: duckdb.DuckDBPyConnection, label: str,
             report: Callable[[str], None] = say, every: float = 2.0) -> Iterator[None]:
    """Report ``label: NN %`` every ``every`` seconds while ``con`` runs one long query.

    DuckDB's query progress is read from another thread (the purpose of
    ``query_progress``); it needs ``enable_progress_bar`` on, with printing off."""
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    done = threading.Event()

    def poll() -> None:
        last = -1
        while not done.wait(every):
            try:
                pct = int(con.query_progress())
            except (duckdb.Error, RuntimeError):
                return
            if 0 <= pct < 100 and pct != last:
                report(f"  {label}: {pct} %")
                last = pct

    thread = threading.Thread(target=poll, name="query-progress", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=every + 1)
    if time.monotonic() - started >= every:
        report(f"  {label}: done in {time.monotonic() - started:.0f} s")
