"""``emsbench hub``: serve the API, publish the report and export, verify what is stored,
and keep the trust registry.

Report, export and the verify commands work whether or not the hub is serving
(``hub.source``); each re-verifies every stored record itself.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emsbench.cli import CommandError


def _config(args: argparse.Namespace) -> Any:
    from hub.config import load_hub_config

    try:
        return load_hub_config(Path(args.config))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def _serve(args: argparse.Namespace) -> int:
    from hub.server import serve

    try:
        serve(Path(args.config))
    except (ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from exc
    return 0


def _write(args: argparse.Namespace, what: str) -> int:
    """Re-verify the year's standing revisions and write the report or the export (the CSV
    and, beside it, the same rows as JSON-stat 2.0: results.csv, results.jsonstat.json)."""
    from hub.jsonstat import jsonstat_path
    from hub.report import build_report, export_csv, export_jsonstat
    from hub.source import SourceError, load_period

    cfg = _config(args)
    try:
        view, catalogues = load_period(cfg, args.year)
        writer = build_report if what == "report" else export_csv
        path = writer(view, catalogues, Path(args.out))
        extra = (export_jsonstat(view, catalogues, jsonstat_path(path)) if what == "export"
                 else None)
    except (ValueError, SourceError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"{what} written to {path}")
    if extra is not None:
        print(f"JSON-stat 2.0 written to {extra}")
    for note in view.set_aside:
        print(f"  set aside: {note.country} {note.submission_id} revision {note.revision}: "
              f"{note.reason}")
    for w in view.withdrawals:
        print(f"  withdrawn: {w.record.country} (revision {w.record.revision})")
    return 0


def _report(args: argparse.Namespace) -> int:
    return _write(args, "report")


def _export(args: argparse.Namespace) -> int:
    return _write(args, "export")


def _verify(args: argparse.Namespace) -> int:
    """Re-verify every stored envelope: signature, key validity when received, content."""
    from hub.ledger import recheck
    from hub.source import SourceError, open_source
    from hub.trust import TrustError, TrustRegistry

    cfg = _config(args)
    try:
        catalogues = cfg.catalogues()
        trust = TrustRegistry.load(cfg.trust_registry)
        source = open_source(cfg)
        try:
            records = source.records()
        finally:
            source.close()
    except (ValueError, SourceError, TrustError) as exc:
        raise CommandError(str(exc)) from exc
    bad = 0
    for r in records:
        _, problems = recheck(r, trust, catalogues, cfg.policy.policy())
        if problems:
            bad += 1
            print(f"FAIL {r.submission_id} ({r.country} {r.year} revision {r.revision}): "
                  + "; ".join(problems))
    print(f"{len(records) - bad} of {len(records)} stored envelopes verify")
    if bad:
        raise CommandError(f"{bad} stored envelope(s) fail verification; the report sets "
                           "them aside")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from emsbench import chain
    from hub.source import SourceError, open_source
    from hub.store import audit_links

    cfg = _config(args)
    try:
        source = open_source(cfg)
        try:
            entries = source.audit_entries()
            records = source.records()
        finally:
            source.close()
    except SourceError as exc:
        raise CommandError(str(exc)) from exc
    links = audit_links(entries)
    # Every stored receipt names its audit entry: a cut-off tail shows as a missing anchor.
    anchors = {int(r.response["receipt"]["audit_seq"]): r.response["receipt"]["audit_hash"]
               for r in records}
    problems = chain.verify(links, anchors)
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        raise CommandError(f"the hub audit log does not verify ({len(problems)} problem(s))")
    print(f"hub audit log verifies: {len(links)} entries, {len(anchors)} receipt anchors")
    return 0


def _trust(args: argparse.Namespace) -> int:
    from hub.trust import TrustError, TrustRegistry
    from hub.trust_file import add_key, revoke_key

    cfg = _config(args)
    path = cfg.trust_registry
    try:
        if args.trust_command == "add":
            pub = Path(args.key).read_text(encoding="ascii").strip() \
                if Path(args.key).is_file() else args.key
            entry = add_key(path, args.country, pub, valid_from=args.valid_from,
                            valid_until=args.valid_until, note=args.note)
            print(f"added key {entry.keyid[:16]}… for {entry.country}")
        elif args.trust_command == "revoke":
            at = args.at or datetime.now(UTC)
            entry = revoke_key(path, args.keyid, at, args.note)
            print(f"revoked key {entry.keyid[:16]}… of {entry.country} as of {at.isoformat()}")
        now = datetime.now(UTC)
        for e in TrustRegistry.load(path).entries():
            refusal = e.refusal(now)
            state = "valid" if refusal is None else refusal.code
            print(f"{e.country}  {e.keyid[:16]}…  {state:<18} from {_when(e.valid_from)} "
                  f"until {_when(e.valid_until)}  revoked {_when(e.revoked_at)}  {e.note}")
    except (OSError, TrustError, KeyError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print("a running hub picks up the change on its next request")
    return 0


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat()


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. "
                                         "2026-01-01T00:00:00+00:00")
    return at


def register(sub: Any) -> None:
    p = sub.add_parser("hub", help="run the benchmark hub")
    hsub = p.add_subparsers(dest="hub_command", required=True, metavar="ACTION")
    serve = hsub.add_parser("serve", help="serve the submission API")
    serve.add_argument("--config", required=True, help="path to hub.toml")
    serve.set_defaults(func=_serve)
    for name, func, help_text, out_help in (
        ("report", _report, "write the benchmark report (HTML)", "output folder"),
        ("export", _export, "write the figures in long form (CSV) and as JSON-stat 2.0 beside it",
         "output .csv file (the JSON-stat file: <name>.jsonstat.json)"),
    ):
        c = hsub.add_parser(name, help=help_text)
        c.add_argument("--config", default="hub.toml", help="path to hub.toml")
        c.add_argument("--year", type=int, required=True)
        c.add_argument("--out", required=True, help=out_help)
        c.set_defaults(func=func)
    v = hsub.add_parser("verify", help="re-verify every stored envelope")
    v.add_argument("--config", default="hub.toml", help="path to hub.toml")
    v.set_defaults(func=_verify)
    a = hsub.add_parser("audit", help="check the hub's hash-chained audit log")
    asub = a.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    av = asub.add_parser("verify", help="detect edited, deleted or reordered entries")
    av.add_argument("--config", default="hub.toml", help="path to hub.toml")
    av.set_defaults(func=_audit_verify)
    t = hsub.add_parser("trust", help="list, add or revoke node keys")
    tsub = t.add_subparsers(dest="trust_command", required=True, metavar="ACTION")
    tl = tsub.add_parser("list", help="every key with its state now")
    ta = tsub.add_parser("add", help="trust a new key (rotation: add, switch, then expire)")
    ta.add_argument("--country", required=True)
    ta.add_argument("--key", required=True, help="base64 public key or a node's .pub file")
    ta.add_argument("--valid-from", type=_time, default=None)
    ta.add_argument("--valid-until", type=_time, default=None)
    ta.add_argument("--note", default="")
    tr = tsub.add_parser("revoke", help="revoke a key as of a time (default now)")
    tr.add_argument("--keyid", required=True, help="key id or a unique prefix of it")
    tr.add_argument("--at", type=_time, default=None,
                    help="when the key stopped being trustworthy (e.g. when it was stolen)")
    tr.add_argument("--note", required=True, help="why, for the record")
    for c in (tl, ta, tr):
        c.add_argument("--config", default="hub.toml", help="path to hub.toml")
        c.set_defaults(func=_trust)
