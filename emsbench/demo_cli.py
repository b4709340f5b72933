"""``emsbench demo``: run the whole federation on synthetic data."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from emsbench.cli import CommandError


def _demo(args: argparse.Namespace) -> int:
    from emsbench.demo import quiet_prefect, run_demo

    if args.scale is not None and not 0 < args.scale <= 1:
        raise CommandError("--scale must be in (0, 1]: the share of each country's yearly volume")
    quiet_prefect()
    started = time.monotonic()
    try:
        result = run_demo(Path(args.out), year=args.year, scale=args.scale,
                          threshold=args.threshold, seed=args.seed)
    except (RuntimeError, ValueError) as exc:
        raise CommandError(f"{exc}") from exc
    print(f"\ndone in {time.monotonic() - started:.0f} s: {result.submissions} countries merged")
    print(f"  report:  {result.report}")
    print(f"  figures: {result.export}")
    print(f"  open data (JSON-stat 2.0): {result.jsonstat}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="federate six countries on synthetic data, end to end")
    p.add_argument("--out", default="demo-out", help="folder for everything the demo makes")
    p.add_argument("--year", type=int, default=2025)
    p.add_argument("--scale", type=float, default=None,
                   help="share of each country's yearly mission volume to generate "
                        "(default: each Nordic country whole, a tenth of the US)")
    p.add_argument("--threshold", type=int, default=5, help="disclosure threshold of the nodes")
    p.add_argument("--seed", type=int, default=2025)
    p.set_defaults(func=_demo)
