"""``emsbench hub``: serve the HTTP API, write the report, export the figures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from emsbench.cli import CommandError


def _store(args: argparse.Namespace) -> tuple[Any, Path | None]:
    from hub.config import load_hub_config
    from hub.store import Store

    try:
        cfg = load_hub_config(Path(args.config))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if not Path(cfg.database).exists():
        raise CommandError(f"no hub database at {cfg.database}: start the hub and run the "
                           "nodes first")
    specs = Path(cfg.specs) if cfg.specs else None
    return Store(Path(cfg.database)), specs


def _serve(args: argparse.Namespace) -> int:
    from hub.server import serve

    try:
        serve(Path(args.config))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return 0


def _write(args: argparse.Namespace, what: str) -> int:
    """Merge the year's latest submissions and write the report or the CSV export."""
    from hub.report import build_report, export_csv

    writer = build_report if what == "report" else export_csv
    store, specs = _store(args)
    try:
        path = writer(store, args.year, Path(args.out), spec_dir=specs)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"{what} written to {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    return _write(args, "report")


def _export(args: argparse.Namespace) -> int:
    return _write(args, "export")


def register(sub: Any) -> None:
    p = sub.add_parser("hub", help="run the benchmark hub")
    hsub = p.add_subparsers(dest="hub_command", required=True, metavar="ACTION")
    serve = hsub.add_parser("serve", help="serve the submission API")
    serve.add_argument("--config", required=True, help="path to hub.toml")
    serve.set_defaults(func=_serve)
    for name, func, help_text, out_help in (
        ("report", _report, "write the benchmark report (HTML)", "output folder"),
        ("export", _export, "write the figures in long form (CSV)", "output .csv file"),
    ):
        c = hsub.add_parser(name, help=help_text)
        c.add_argument("--config", default="hub.toml", help="path to hub.toml")
        c.add_argument("--year", type=int, required=True)
        c.add_argument("--out", required=True, help=out_help)
        c.set_defaults(func=func)
