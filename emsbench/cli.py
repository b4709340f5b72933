"""The ``emsbench`` command: sub-commands for synthetic data, node, hub, the demo and specs.

Each area registers its own sub-parser (``register(subparsers)``) and imports its heavy
modules only when its command runs, so ``emsbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


class CommandError(Exception):
    """A failure the user can act on: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from emsbench.demo_cli import register as register_demo
    from emsbench.specs_cli import register as register_specs
    from hub.cli import register as register_hub
    from node.cli import register as register_node
    from node.synth.cli import register as register_synth

    parser = argparse.ArgumentParser(
        prog="emsbench", description="Federated Nordic–US prehospital EMS benchmark")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_synth(sub)
    register_node(sub)
    register_hub(sub)
    register_demo(sub)
    register_specs(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Nodes run on closed networks: the embedded Prefect server must not try to phone home
    # (it would log a failed-telemetry error on every run).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"emsbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emsbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m emsbench.cli`: this module runs as __main__, but the commands raise the
    # CommandError of emsbench.cli, so run that module's main, which catches it.
    from emsbench.cli import main as module_main

    sys.exit(module_main())
