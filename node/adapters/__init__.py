"""Input formats: an adapter turns a national export into the common model's input columns.

``format`` in ``node.toml`` names one of ``FORMATS``; ``common`` (the default) is a Parquet
or CSV file already in the common model, read by ``node.source`` itself. Every other format
is a module with::

    def source(con: duckdb.DuckDBPyConnection, path: Path, *, fmt: str,
               encoding: str | None, workdir: Path) -> node.source.Source

``source`` runs before the sandbox is locked (it may read files and register Arrow
tables) and returns a ``Source`` whose ``sql`` is a DuckDB table expression with one column
per model input column it can fill, named exactly as the model names it. Native codes are
crosswalked to common codes in that SQL; a native code without a mapping is passed through
unchanged, so validation empties or rejects it and counts it by column, never silently.
``Source.columns`` maps each produced model column to its name in ``sql`` (the same name)
and ``Source.origin`` to the native field it came from, for messages; ``text_lines`` says
whether row numbers are lines of one text file (for the rejects file).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# format name → module. One module per format family; the national formats share
# node.adapters.national, driven by declarative format files (formats/national-*.toml),
# through one small entry-point module each (source() is given only the path).
FORMATS: dict[str, str | None] = {
    "common": None,
    "nemsis": "node.adapters.nemsis",
    "national-no": "node.adapters.national",
    "national-se": "node.adapters.national",
    "national-dk": "node.adapters.national",
    "national-fi": "node.adapters.national",
    "national-is": "node.adapters.national",
    "postgresql": "node.adapters.postgres",
}


def adapter(fmt: str) -> ModuleType | None:
    """The module of ``fmt`` (None for the common model); ValueError for an unknown name."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; use one of {', '.join(FORMATS)}")
    name = FORMATS[fmt]
    return importlib.import_module(name) if name else None
