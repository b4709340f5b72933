"""Writers of the input formats (``node.adapters.FORMATS``) for synthetic data.

``emsbench synth --format F`` generates the country's year in the common model (Parquet)
and, for any other format, hands that file to the format's writer, which writes the same
missions as the national system would export them. Each adapter's round-trip test reads
the writer's output back and compares it with the common-model file it started from.

A writer is a module with::

    def write(common: Path, out: Path, *, fmt: str, country: str) -> Path

reading the common-model Parquet ``common`` and writing ``out`` (a file or a folder, as the
format needs); it returns the path a node's ``data`` should name.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from pathlib import Path

WRITERS: dict[str, str | None] = {
    "common": None,
    "nemsis": "node.synth.nemsis_writer",
    "national-no": "node.synth.national_writer",
    "national-se": "node.synth.national_writer",
    "national-dk": "node.synth.national_writer",
    "national-fi": "node.synth.national_writer",
    "national-is": "node.synth.national_writer",
}


def write_format(common: Path, out: Path, fmt: str, country: str) -> Path:
    """Write the common-model file ``common`` as ``fmt`` to ``out``; return the data path."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(WRITERS)}")
    name = WRITERS[fmt]
    if name is None:
        if Path(common) != Path(out):
            shutil.copyfile(common, out)
        return Path(out)
    module = importlib.import_module(name)
    result: Path = module.write(Path(common), Path(out), fmt=fmt, country=country)
    return result


def generate_as(fmt: str, country: str, year: int, out: Path, rows: int | None = None,
                seed: int = 2025, case_mix: str | None = None) -> tuple[Path, int]:
    """Generate ``country``'s synthetic year and write it as ``fmt``; (data path, rows).
    ``case_mix``: see ``node.synth.generator``."""
    from node.synth.generator import generate

    if fmt == "common":
        return Path(out), generate(country, year, out, rows=rows, seed=seed,
                                   case_mix=case_mix)
    with tempfile.TemporaryDirectory() as tmp:
        common = Path(tmp) / "common.parquet"
        n = generate(country, year, common, rows=rows, seed=seed, case_mix=case_mix)
        return write_format(common, out, fmt, country), n
