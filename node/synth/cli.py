"""The ``emsbench synth`` sub-command: write one country's synthetic year to Parquet.

Only the calibration table (pure Python) is imported when the parser is built; numpy,
pyarrow and the generator load when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from emsbench.cli import CommandError
from node.synth.calibration import COUNTRIES

# Progress is reported at most once per 1/_PROGRESS_STEPS of the total (every 5 %).
_PROGRESS_STEPS = 20


def register(subparsers: Any) -> None:
    """Add ``synth`` to an argparse sub-parsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "synth", help="generate a synthetic mission file for one country and year",
        description="Write synthetic ambulance missions in the common information model, "
                    "calibrated to the country's published figures, to a Parquet file.")
    p.add_argument("--country", required=True,
                   help=f"country code, one of {', '.join(COUNTRIES)}")
    p.add_argument("--year", type=int, required=True, help="calendar year of the missions")
    p.add_argument("--out", type=Path, required=True, help="output Parquet file")
    p.add_argument("--rows", type=int, default=None,
                   help="number of missions (default: the country's yearly volume)")
    p.add_argument("--seed", type=int, default=2025, help="random seed (default 2025)")
    p.add_argument("--format", default="common",
                   help="input format to write: common (Parquet, the default), nemsis (a "
                        "folder of NEMSIS tables) or national-no, -se, -dk, -fi, -is (the "
                        "country's national export)")
    p.add_argument("--case-mix", choices=("standard", "worse"), default=None,
                   help="draw the EMS-treated cardiac arrests' case mix (age, sex, witnessed, "
                        "first rhythm) from this mix and their survival from a model shared "
                        "by all countries: same quality of care, a chosen case mix (default: "
                        "the country's calibration)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the file; progress on stderr, path and row count on stdout."""
    country = str(args.country).upper()
    if country not in COUNTRIES:
        raise CommandError(
            f"unknown country {args.country!r}; valid countries: {', '.join(COUNTRIES)}")
    if args.rows is not None and args.rows < 0:
        raise CommandError("--rows must not be negative")

    from node.synth.generator import generate

    last = 0

    def progress(done: int, total: int) -> None:
        nonlocal last
        # integer buckets, so float rounding cannot skip or double a report
        step = done * _PROGRESS_STEPS // total if total else _PROGRESS_STEPS
        if step > last or done == total:
            last = step
            print(f"synth {country}: {done:,} / {total:,} rows ({done / max(total, 1):.0%})",
                  file=sys.stderr)

    # only when asked: without it the call is exactly the default generator's
    mix = {"case_mix": args.case_mix} if args.case_mix else {}
    try:
        if args.format == "common":
            n = generate(country, args.year, args.out, rows=args.rows, seed=args.seed,
                         progress=progress, **mix)
            out = args.out
        else:
            from node.synth.formats import generate_as

            out, n = generate_as(args.format, country, args.year, args.out, rows=args.rows,
                                 seed=args.seed, **mix)
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"{out}\t{n} rows")
    return 0
