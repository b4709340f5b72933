"""Input format ``national-is``: the Icelandic national export (``formats/national-is.toml``).

A registered entry point of ``node.adapters.national``, which does the reading: ``source``
receives only the path, so this module names the format it reads.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from node.adapters.national import description, read
from node.source import Source

FORMAT = "national-is"
DESCRIPTION = description(FORMAT)


def source(con: duckdb.DuckDBPyConnection, path: Path, *, encoding: str | None,
           workdir: Path) -> Source:
    """The export at ``path`` as the common model's input columns."""
    return read(FORMAT, con, path, encoding=encoding, workdir=workdir)
