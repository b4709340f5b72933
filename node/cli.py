"""``emsbench node``: run a node's flow once or serve it on its schedules, see and deliver
its outbox, withdraw a period, verify its audit log, or make its key pair.

Every command with ``--config`` gives Prefect the node's own home (``node.serve``) before
Prefect is imported.

Every failure the operator can act on ends as one line saying what to do next
(``CommandError``, exit status 2); so does anything left undelivered.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emsbench.cli import CommandError

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.delivery import Outcome
    from node.ingest import IngestReport
    from node.outbox import Entry


def _config(args: argparse.Namespace) -> NodeConfig:
    """The config, and the hub key read once, before Prefect starts: a typo should not
    cost a server start-up. Prefect gets the node's own home first."""
    from node.config import load_node_config
    from node.receipt import load_hub_key
    from node.serve import use_node_prefect

    use_node_prefect(Path(args.config))

    try:
        cfg = load_node_config(Path(args.config), getattr(args, "run_year", None))
        if cfg.hub_key is not None:
            load_hub_key(cfg.hub_key)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return cfg


@contextmanager
def _frozen_imports() -> Iterator[None]:
    """Import Prefect and the node with the garbage collector off, then freeze what they
    made. Their 200,000 or so objects live as long as the process; every full collection
    walked them all (seven in a small run, 0.8 s of CPU: more than its computation).
    Nothing changes in a process that has imported Prefect already (tests, a program
    embedding the node)."""
    if "prefect" in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _send_hint(args: argparse.Namespace) -> str:
    return f"emsbench node send --config {args.config}"


def _failures() -> tuple[type[BaseException], ...]:
    from emsbench.sandbox import SandboxError
    from emsbench.specs import SpecError
    from node.audit import AuditError
    from node.ingest import InputError
    from node.workspace import WorkspaceBusy

    # ValueError covers SigningRefused, bad keys (dsse.SignatureError) and config errors;
    # OSError a full disk or a folder the node may not write.
    return (ValueError, OSError, InputError, SpecError, SandboxError, AuditError,
            WorkspaceBusy)


def _outcome_line(o: Outcome) -> str:
    if o.status == "delivered" and o.receipt:
        return (f"{o.submission_id}  delivered  hub receipt at "
                f"{o.receipt.received_at.isoformat()} (hub audit entry {o.receipt.audit_seq})")
    return f"{o.submission_id}  {o.status:<9}  {o.message}"


def _finish(outcomes: list[Outcome], args: argparse.Namespace) -> int:
    """Print one line per delivery; exit 2 if anything is still pending or was refused."""
    for o in outcomes:
        print(_outcome_line(o))
    left = sum(o.status == "pending" for o in outcomes)
    refused = sum(o.status == "refused" for o in outcomes)
    if refused and not left:
        raise CommandError(f"the hub refused {refused} document(s) (see above); fix what it "
                           "says and sign a new revision (emsbench node run)")
    if left:
        also = f" and {refused} refused" if refused else ""
        raise CommandError(f"{left} signed document(s) still pending{also}: they are kept in "
                           f"the outbox; run `{_send_hint(args)}` to deliver them")
    return 0


def _ingest_summary(r: IngestReport) -> str:
    """A few lines: what was read, what was rejected or emptied, and where the detail is."""
    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in d.items()) or "none"

    lines = [f"rows read {r.rows_read:,}, accepted {r.rows_accepted:,}, rejected "
             f"{r.rows_read - r.rows_accepted:,}: {counts(r.rejected_by_reason)}"]
    if r.nulled_by_reason:
        lines.append(f"values set to empty (optional fields): {counts(r.nulled_by_reason)}")
    if r.out_of_order:
        lines.append(f"times out of order (kept; intervals exclude them): "
                     f"{counts(r.out_of_order)}")
    if r.renamed_columns:
        lines.append("columns matched: " + ", ".join(
            f"{h!r} as {c}" for h, c in r.renamed_columns.items()))
    if r.rejects_file is not None:
        lines.append(f"rejects file (stays on this node): {r.rejects_file}")
    return "\n".join(lines)


def _log_to_file(cfg: NodeConfig, args: argparse.Namespace) -> Path:
    from node.console import setup

    return setup(cfg.reports / "node.log", debug=bool(getattr(args, "debug", False)))


def _run(args: argparse.Namespace) -> int:
    with _frozen_imports():
        cfg = _config(args)
        from node.flow import run_node

    log = _log_to_file(cfg, args)
    try:
        result = run_node(Path(args.config), args.run_year)
    except _failures() as exc:
        raise CommandError(f"{exc}\n  full log: {log} (or run again with --debug)") from exc
    sub = result.submission
    if result.ingest is not None:
        print(_ingest_summary(result.ingest))
    print(f"submission {sub.submission_id} (revision {sub.revision}) written to "
          f"{result.outbox_file}")
    if result.preview is not None:
        print(f"release preview: {result.preview.html} ({result.preview.cells} cells, "
              f"{result.preview.withheld} withheld; also {result.preview.csv.name})")
    if result.held:
        print(f"review = true: nothing was sent. Read the preview, then `emsbench node approve "
              f"--config {args.config}` and `{_send_hint(args)}`")
        return 0
    if result.delivery is None:
        print(f"no hub_url in {args.config}: it stays in the outbox; set hub_url and hub_key, "
              f"then `{_send_hint(args)}` delivers it")
        return 0
    o = result.delivery
    if o.status == "delivered":
        print(_outcome_line(o))
        return 0
    if o.status == "refused":
        raise CommandError(o.message)
    raise CommandError(f"{o.message}. The signed submission is kept in {cfg.outbox} as "
                       f"pending: run `{_send_hint(args)}` to deliver it")


def _serve(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from node.serve import ServeError, serve

    try:
        serve(Path(args.config), cfg)
    except ServeError as exc:
        raise CommandError(str(exc)) from exc
    print("stopped; the schedules are paused until the node is served again")
    return 0


def _year(value: str) -> int | str:
    """``--year``: current, previous or a year."""
    if value in ("current", "previous"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use current, previous or a year such as 2025"
                                         ) from None


def _send(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if not cfg.hub_url:
        raise CommandError(f"hub_url is empty in {args.config}: set hub_url and hub_key to "
                           "send the outbox")
    with _frozen_imports():
        from node.flow import send_pending

    try:
        outcomes = send_pending(Path(args.config))
    except _failures() as exc:
        raise CommandError(str(exc)) from exc
    if not outcomes:
        print(f"nothing to send: no pending entry in {cfg.outbox}")
        return 0
    return _finish(outcomes, args)


def _status_line(e: Entry) -> str:
    if e.signed is None:
        return f"{e.submission_id}  unreadable  {e.detail}"
    head = (f"{e.submission_id}  {e.kind:<10}  {e.year}  revision {e.revision:<3}  "
            f"{e.status:<10}")
    if e.receipt:
        return f"{head}  received {e.receipt.received_at.isoformat()}"
    if e.refusal:
        return f"{head}  {e.refusal.status} {e.refusal.code}: {e.refusal.message}"
    return f"{head}  {e.detail}".rstrip()  # a pending entry may say why its receipt failed


def _approve(args: argparse.Namespace) -> int:
    """Approve a held submission for release: exactly the payload bytes now in the outbox."""
    import getpass

    from node import audit
    from node.outbox import locked, read_outbox, write_approval

    cfg = _config(args)
    with locked(cfg.outbox):
        waiting = [e for e in read_outbox(cfg.outbox) if e.status == "awaiting_approval"]
        if args.submission:
            waiting = [e for e in waiting if e.submission_id == args.submission]
            if not waiting:
                raise CommandError(f"{args.submission} is not awaiting approval in "
                                   f"{cfg.outbox}; `emsbench node status --config "
                                   f"{args.config}` lists the outbox")
        if not waiting:
            print(f"nothing awaits approval in {cfg.outbox}")
            return 0
        if len(waiting) > 1:
            ids = ", ".join(e.submission_id for e in waiting)
            raise CommandError(f"{len(waiting)} submissions await approval ({ids}): name one "
                               "with --submission")
        [entry] = waiting
        assert entry.signed is not None
        preview = cfg.reports / f"preview-{entry.submission_id}.html"
        if not preview.exists():
            raise CommandError(f"no release preview {preview} for {entry.submission_id}: "
                               "run the node again to make one before approving")
        by = args.by or getpass.getuser()
        # Logged first: an approval that is in effect is always in the log.
        audit.append(cfg.audit_log, "approved", {
            "submission_id": entry.submission_id, "approved_by": by,
            "payload_sha256": entry.signed.payload_sha256})
        write_approval(cfg.outbox, entry.signed, by)
    print(f"approved {entry.submission_id} (revision {entry.revision}, payload SHA-256 "
          f"{entry.signed.payload_sha256[:16]}…) as previewed in {preview}")
    if cfg.hub_url:
        print(f"`{_send_hint(args)}` delivers it")
    return 0


def _status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from node.outbox import read_outbox
    from node.receipt import load_hub_key

    hub_key = load_hub_key(cfg.hub_key) if cfg.hub_key else None
    entries = read_outbox(cfg.outbox, hub_key)
    if not entries:
        print(f"the outbox {cfg.outbox} holds nothing yet")
        return 0
    for e in reversed(entries):  # newest first
        print(_status_line(e))
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.status] = counts.get(e.status, 0) + 1
    order = ("delivered", "pending", "awaiting_approval", "superseded", "refused",
             "unreadable")
    parts = ", ".join(f"{counts[s]} {s}" for s in order if s in counts)
    hint = f"; `{_send_hint(args)}` delivers the pending ones" if "pending" in counts else ""
    print(f"{len(entries)} in the outbox: {parts}{hint}")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from pydantic import ValidationError

    from emsbench.specs import load_specs
    from emsbench.wire import Withdrawal
    from node import submission as sub

    reason = " ".join(args.reason.split())
    if not 3 <= len(reason) <= 500:
        raise CommandError("--reason must say in 3 to 500 characters why the figures are "
                           "withdrawn")

    def build(catalogue: str, revision: int) -> Withdrawal:
        return sub.build_withdrawal(cfg.country, args.year, catalogue, revision, reason)

    try:
        signed = sub.seal_next_revision(build, cfg.country, args.year,
                                        load_specs(cfg.specs), cfg)
    except ValidationError as exc:
        raise CommandError(f"cannot withdraw: {exc.errors()[0]['msg']}") from exc
    except _failures() as exc:
        raise CommandError(str(exc)) from exc
    print(f"withdrawal {signed.submission_id} of {cfg.country} {args.year} (revision "
          f"{signed.doc.revision}) written to {signed.path}")
    if not cfg.hub_url:
        print(f"no hub_url in {args.config}: it stays in the outbox; set hub_url and hub_key, "
              f"then `{_send_hint(args)}` delivers it")
        return 0
    from node.flow import send_pending

    try:
        outcomes = send_pending(Path(args.config), only=[signed.submission_id])
    except _failures() as exc:
        raise CommandError(str(exc)) from exc
    if not outcomes:  # e.g. a file of the same id appeared: never send what is not pending
        raise CommandError(f"{signed.submission_id} is not pending, so it was not sent: see "
                           f"`emsbench node status --config {args.config}`")
    return _finish(outcomes, args)


def _audit_verify(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from emsbench import chain
    from node.audit import read_log
    from node.outbox import read_outbox

    entries = [e for e in read_outbox(cfg.outbox) if e.signed]
    if not cfg.audit_log.exists():
        if entries:
            raise CommandError(f"the audit log {cfg.audit_log} is missing, but the outbox "
                               f"holds {len(entries)} signed document(s): restore it from "
                               "a backup")
        print(f"no audit log at {cfg.audit_log} yet: nothing has been signed")
        return 0
    links, problems = read_log(cfg.audit_log)
    problems += chain.verify(links)
    count = len(links)
    # The chain cannot show entries cut off its end; the outbox can.
    logged = {link.fields.get("submission_id") for link in links
              if link.fields.get("event") == "signed"}
    problems += [f"{e.submission_id}: signed (it is in the outbox) but the log has no "
                 "'signed' entry for it (entries were cut off or deleted)"
                 for e in entries if e.submission_id not in logged]
    if problems:
        for p in problems:
            print(p)
        raise CommandError(f"the audit log {cfg.audit_log} does not verify: {len(problems)} "
                           "problem(s) above; keep the file as it is and investigate")
    print(f"audit log {cfg.audit_log}: OK, {count} entries")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from node.keys import keygen

    try:
        pub_path, pub = keygen(Path(args.out))
    except (FileExistsError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"private key: {args.out} (keep it on this node)")
    print(f"public key:  {pub_path}: {pub}")
    print("add the public key to the hub's trust registry under your country")
    return 0


def _with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", required=True, help="path to node.toml")
    return p


def register(sub: Any) -> None:
    p = sub.add_parser("node", help="run a national node")
    nsub = p.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    run = _with_config(nsub.add_parser(
        "run", help="compute, sign and send this country's aggregates"))
    run.add_argument("--debug", action="store_true",
                     help="show Prefect's full log, tracebacks included, on the terminal")
    run.add_argument("--year", type=_year, default=None, dest="run_year",
                     help="compute this year instead of node.toml's: current, previous or "
                          "a year ({year} in data is replaced by it)")
    run.set_defaults(func=_run)
    serve = _with_config(nsub.add_parser(
        "serve", help="run the node on the schedules of node.toml, against a running "
                      "Prefect server (PREFECT_API_URL), until Ctrl-C"))
    serve.set_defaults(func=_serve)
    _with_config(nsub.add_parser(
        "status", help="list the outbox: delivered, pending, superseded, refused"
    )).set_defaults(func=_status)
    _with_config(nsub.add_parser(
        "send", help="deliver every pending outbox entry to the hub")).set_defaults(func=_send)
    ap = _with_config(nsub.add_parser(
        "approve", help="approve a submission held for review (review = true) for sending"))
    ap.add_argument("--submission", help="its id (needed when several are waiting)")
    ap.add_argument("--by", help="who approves (default: your user name); logged")
    ap.set_defaults(func=_approve)
    wd = _with_config(nsub.add_parser(
        "withdraw", help="sign and send a withdrawal of this country's figures for a year"))
    wd.add_argument("--year", type=int, required=True, help="the year to withdraw")
    wd.add_argument("--reason", required=True, help="why, in a sentence (sent to the hub)")
    wd.set_defaults(func=_withdraw)
    au = nsub.add_parser("audit", help="the node's hash-chained audit log")
    asub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    _with_config(asub.add_parser(
        "verify", help="check that no entry was edited, removed or moved"
    )).set_defaults(func=_audit_verify)
    kg = nsub.add_parser("keygen", help="make an Ed25519 key pair for this node")
    kg.add_argument("--out", required=True, help="private key file to write, e.g. keys/NO.pem")
    kg.set_defaults(func=_keygen)
