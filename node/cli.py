"""``emsbench node``: run a node's flow, or make its key pair."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from emsbench.cli import CommandError


def _run(args: argparse.Namespace) -> int:
    from emsbench.sandbox import SandboxError
    from emsbench.specs import SpecError
    from node.config import load_node_config
    from node.ingest import InputError
    from node.submission import DeliveryError

    try:
        # Check the config before Prefect starts: a typo should not cost a server start-up.
        load_node_config(Path(args.config))
        from node.flow import run_node

        result = run_node(Path(args.config))
    except (ValueError, InputError, SpecError, SandboxError, DeliveryError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"submission {result.submission.submission_id} written to {result.outbox_file}")
    if result.receipt:
        print(f"accepted by the hub at {result.receipt.get('received_at')}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from node.keys import keygen

    try:
        pub_path, pub = keygen(Path(args.out))
    except FileExistsError as exc:
        raise CommandError(str(exc)) from exc
    print(f"private key: {args.out} (keep it on this node)")
    print(f"public key:  {pub_path}: {pub}")
    print("add the public key to the hub's trust registry under your country")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("node", help="run a national node")
    nsub = p.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    run = nsub.add_parser("run", help="compute, sign and send this country's aggregates")
    run.add_argument("--config", required=True, help="path to node.toml")
    run.set_defaults(func=_run)
    kg = nsub.add_parser("keygen", help="make an Ed25519 key pair for this node")
    kg.add_argument("--out", required=True, help="private key file to write, e.g. keys/NO.pem")
    kg.set_defaults(func=_keygen)
