"""``emsbench hub``: serve the API, publish the report, the export and the public site,
verify what is stored, and keep the trust registry.

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


def _export(args: argparse.Namespace) -> int:
    """Re-verify the year's standing revisions and write the export: the CSV and, beside
    it, the same rows as JSON-stat 2.0 (results.csv, results.jsonstat.json)."""
    from hub.jsonstat import jsonstat_path
    from hub.report import export_csv, export_jsonstat
    from hub.source import SourceError, load_period

    cfg = _config(args)
    try:
        view, catalogues = load_period(cfg, args.year)
        path = export_csv(view, catalogues, Path(args.out))
        extra = export_jsonstat(view, catalogues, jsonstat_path(path))
    except (ValueError, SourceError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"export written to {path}")
    print(f"JSON-stat 2.0 written to {extra}")
    _notes(view)
    return 0


def _notes(view: Any) -> None:
    for note in view.set_aside:
        print(f"  set aside: {note.country} {note.submission_id} revision {note.revision}: "
              f"{note.reason}")
    for w in view.withdrawals:
        print(f"  withdrawn: {w.record.country} (revision {w.record.revision})")


def _report(args: argparse.Namespace) -> int:
    """Re-verify and merge every year held and write the report of ``--year`` (HTML, and
    the PDF unless ``--no-pdf``) with the trend over every earlier year."""
    from hub.history import load_history
    from hub.report import write_report
    from hub.source import SourceError

    cfg = _config(args)
    try:
        history = load_history(cfg)
        history.year(args.year)  # a clear error before anything is written
    except (ValueError, SourceError) as exc:
        raise CommandError(str(exc)) from exc
    try:
        files = write_report(history, args.year, Path(args.out), lang=args.lang,
                             pdf=not args.no_pdf)
    except RuntimeError as exc:  # the PDF's browser; the HTML is written before it
        raise CommandError(f"{exc} (the HTML report is written; --no-pdf skips the PDF)"
                           ) from exc
    print(f"report written to {files.html}")
    if files.pdf is not None:
        print(f"PDF written to {files.pdf}")
    years = [y for y in history.year_numbers if y <= args.year]
    print(f"  years shown: {', '.join(map(str, years))}")
    for skipped, why in sorted(history.skipped.items()):
        print(f"  year {skipped} left out: {why}")
    _notes(history.year(args.year).view)
    return 0


def _publish(args: argparse.Namespace) -> int:
    """Re-verify and merge every year held and write the public site (``hub.site``)."""
    from hub.site import publish_from_config
    from hub.source import SourceError

    cfg = _config(args)
    try:
        done = publish_from_config(cfg, Path(args.out) if args.out else None, args.lang)
    except (ValueError, SourceError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    size = sum(d.size for d in done.downloads)
    print(f"site written to {done.out}: {len(done.pages)} pages in {', '.join(args.lang)}, "
          f"{len(done.downloads)} data files ({size / 1e6:.1f} MB), {done.seconds:.1f} s")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Re-verify every stored envelope: signature, key validity when received, content."""
    from hub.ledger import recheck
    from hub.source import SourceError, read_records
    from hub.trust import TrustError, TrustRegistry

    cfg = _config(args)
    try:
        catalogues = cfg.catalogues()
        trust = TrustRegistry.load(cfg.trust_registry)
        records = read_records(cfg)
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
        ("report", _report, "write the annual benchmark report (HTML and PDF)",
         "output folder"),
        ("export", _export, "write the figures in long form (CSV) and as JSON-stat 2.0 beside it",
         "output .csv file (the JSON-stat file: <name>.jsonstat.json)"),
    ):
        c = hsub.add_parser(name, help=help_text)
        c.add_argument("--config", default="hub.toml", help="path to hub.toml")
        c.add_argument("--year", type=int, required=True)
        c.add_argument("--out", required=True, help=out_help)
        if name == "report":
            c.add_argument("--lang", default="en", choices=["en", "nb"],
                           help="language of the report's fixed text (default en)")
            c.add_argument("--no-pdf", action="store_true",
                           help="write the HTML only (the PDF needs Chromium: "
                                "bash scripts/browser.sh)")
        c.set_defaults(func=func)
    pub = hsub.add_parser("publish", help="write the public web site: every year held, with "
                          "open data (CSV, JSON-stat 2.0); the hub serves it under /public/")
    pub.add_argument("--config", default="hub.toml", help="path to hub.toml")
    pub.add_argument("--out", default=None, help="output folder (default: the hub's public "
                     "folder, [hub] public)")
    pub.add_argument("--lang", nargs="+", default=["en", "nb"], choices=["en", "nb"],
                     help="languages; the first at the folder's root, the others below "
                     "<lang>/ (default: en nb)")
    pub.set_defaults(func=_publish)
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
