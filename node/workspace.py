"""The node's working folder: scratch files of a run, and only while it lasts.

A Parquet input is read where it is; an input in another form (CSV, NEMSIS tables, a
national export, PostgreSQL) is staged once as a Parquet file here, and DuckDB spills here
past its memory limit. Those files hold row-level data, so they must not outlive the run:
the folder is private to the node's user (0700, also when it existed with looser
permissions), whatever a crashed run left in it is removed when the next run starts (and
named in the log), and the run's own files are removed when it ends, whether it succeeded
or failed. The folder is locked for the run, so a second run cannot delete the first one's
working files.

Only the node's own working files (named ``missions.duckdb*``: the staged input and the
spill folder) are ever removed: a ``workdir`` pointed at a folder holding anything else by
mistake loses nothing else.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WORK_DATABASE = "missions.duckdb"
MODE = 0o700


class WorkspaceBusy(RuntimeError):
    """Another run holds the working folder."""


@dataclass(frozen=True)
class Workspace:
    path: Path
    removed: tuple[str, ...]  # residue of a crashed run, removed at the start

    @property
    def database(self) -> Path:
        return self.path / WORK_DATABASE


def working_files(folder: Path) -> list[Path]:
    """The node's own working files in ``folder`` (the database and its companions)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(WORK_DATABASE))


def remove_working_files(folder: Path) -> list[str]:
    """Remove the working files; return their names."""
    removed = []
    for p in working_files(folder):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def prepare(folder: Path) -> None:
    """Create ``folder`` private to this user, or make it so."""
    folder.mkdir(mode=MODE, parents=True, exist_ok=True)
    folder.chmod(MODE)  # mkdir's mode is masked by the umask, and an old folder keeps its own


@contextmanager
def workspace(folder: Path) -> Iterator[Workspace]:
    """The prepared, locked working folder, emptied of working files before and after."""
    prepare(folder)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise WorkspaceBusy(f"another node run is using the working folder {folder}; "
                                "wait for it to finish, then run again") from exc
        removed = tuple(remove_working_files(folder))
        try:
            yield Workspace(folder, removed)
        finally:
            remove_working_files(folder)
    finally:
        os.close(fd)
