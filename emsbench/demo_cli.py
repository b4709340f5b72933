"""``emsbench demo``: run the whole federation on synthetic data, for several years."""

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
    if args.years < 1:
        raise CommandError("--years must be at least 1")
    quiet_prefect()
    started = time.monotonic()
    try:
        result = run_demo(Path(args.out), year=args.year, scale=args.scale,
                          threshold=args.threshold, seed=args.seed, years=args.years)
    except (RuntimeError, ValueError) as exc:
        raise CommandError(f"{exc}") from exc
    first, last = result.years[0], result.years[-1]
    span = f"{first}-{last}" if first != last else str(last)
    print(f"\ndone in {time.monotonic() - started:.0f} s: every country delivered {span}; "
          f"{result.submissions} countries merged for {last}")
    for label, path in result.paths():
        print(f"  {label}: {path}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="federate six countries on synthetic data, end to end")
    p.add_argument("--out", default="demo-out", help="folder for everything the demo makes")
    p.add_argument("--year", type=int, default=2025, help="the last year (the one published)")
    p.add_argument("--years", type=int, default=3,
                   help="how many years, ending with --year, every country delivers "
                        "(default 3: trends need more than one)")
    p.add_argument("--scale", type=float, default=None,
                   help="share of each country's yearly mission volume to generate "
                        "(default: each Nordic country whole, a tenth of the US)")
    p.add_argument("--threshold", type=int, default=5, help="disclosure threshold of the nodes")
    p.add_argument("--seed", type=int, default=2025)
    p.set_defaults(func=_demo)
