"""``emsbench specs release | approve | check-release``: sign a catalogue release.

The first approver writes the manifest of the catalogue on disk and signs it; each further
approver adds a signature to the same file; anyone (a node operator, the hub) checks the
file against the approvers file and the specs on disk.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emsbench.cli import CommandError


def _specs(args: argparse.Namespace) -> Any:
    from emsbench.specs_cli import load_or_explain

    return load_or_explain(args.dir, None)


def _key(path: str) -> Any:
    from emsbench import dsse

    try:
        return dsse.load_private_key(Path(path))
    except dsse.SignatureError as exc:
        raise CommandError(str(exc)) from exc


def _release(args: argparse.Namespace) -> int:
    from emsbench import dsse
    from emsbench.files import write_atomic
    from emsbench.release import build_release, sign_release
    from emsbench.specs import RELEASES_DIR, default_spec_dir

    manifest = build_release(_specs(args), args.name, datetime.now(UTC).date())
    envelope = sign_release(manifest, _key(args.key))
    out = Path(args.out)
    try:
        write_atomic(out, dsse.envelope_bytes(envelope), exclusive=True)
    except FileExistsError as exc:
        raise CommandError(f"{out} exists: approvers add their signature with "
                           f"`emsbench specs approve --release {out}`") from exc
    # The manifest joins the catalogue's release history: from now on a change of meaning
    # of any of these spec versions fails validation until the version is bumped.
    history = (Path(args.dir) if args.dir else default_spec_dir()) / RELEASES_DIR
    try:
        write_atomic(history / f"{manifest.name}.json", manifest.to_bytes(), exclusive=True)
    except FileExistsError as exc:
        raise CommandError(f"release {manifest.name} is already in {history}; choose a new "
                           "release name") from exc
    print(f"release {manifest.name}: {len(manifest.specs)} specs, catalogue "
          f"{manifest.catalogue[:12]}…, signed once; written to {out} and recorded in "
          f"{history}")
    return 0


def _approve(args: argparse.Namespace) -> int:
    from emsbench import dsse
    from emsbench.files import write_atomic
    from emsbench.release import sign_release

    path = Path(args.release)
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
        signed = sign_release(envelope, _key(args.key))  # refuses a malformed envelope
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot sign {path}: {exc}") from exc
    write_atomic(path, dsse.envelope_bytes(signed))
    print(f"{path}: now {len(signed['signatures'])} signature(s)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from emsbench.release import ReleaseError, check_release

    try:
        release, names = check_release(_specs(args), Path(args.release), Path(args.approvers))
    except ReleaseError as exc:
        raise CommandError(str(exc)) from exc
    print(f"release {release.name} ({len(release.specs)} specs) is approved by "
          f"{', '.join(names)} and matches the specs")
    return 0


def add_commands(ssub: Any, dir_help: str) -> None:
    rel = ssub.add_parser("release", help="write and sign the manifest of a catalogue release")
    rel.add_argument("--name", required=True, help="release name, e.g. 2026.1")
    rel.add_argument("--key", required=True, help="your approver private key (PEM)")
    rel.add_argument("--out", required=True, help="release file to write")
    rel.add_argument("--dir", help=dir_help)
    rel.set_defaults(func=_release)
    app = ssub.add_parser("approve", help="add your signature to a release file")
    app.add_argument("--release", required=True)
    app.add_argument("--key", required=True, help="your approver private key (PEM)")
    app.set_defaults(func=_approve)
    chk = ssub.add_parser("check-release", help="is the release approved and are the specs it")
    chk.add_argument("--release", required=True)
    chk.add_argument("--approvers", required=True, help="approvers.toml: keys and threshold")
    chk.add_argument("--dir", help=dir_help)
    chk.set_defaults(func=_check)
