"""Which stored revision of each period stands, re-checked from the signed bytes up.

The store keeps every revision ever accepted. Before anything is merged or published, each
record is checked again with intake's own functions (``hub.verification``): the envelope's
signature against the trust registry (retired keys included), the key's country and its
validity *at the time the hub received the record* (so a key revoked as of its compromise
discredits what it signed afterwards), the wire model and ``emsbench.conformance`` under
today's catalogue and policy; then the payload hash and index columns against what intake
recorded. Per country, the highest revision that passes stands; a withdrawal
standing means the country is not published. Every record passed over is reported with its
reason, so the report can say why a figure is missing instead of failing for everyone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from emsbench.conformance import Policy
from emsbench.specs import IndicatorSpec, catalogue_sha256
from emsbench.wire import Document, Submission, Withdrawal
from hub.store import Record
from hub.trust import TrustRegistry
from hub.verification import ApiError, judge, open_document


@dataclass(frozen=True)
class Note:
    """A stored revision that is not used, and why."""

    country: str
    year: int
    submission_id: str
    revision: int
    reason: str


@dataclass(frozen=True)
class Standing:
    """The revision that stands for one country and year."""

    record: Record
    document: Document


@dataclass
class PeriodView:
    """What the report and export publish for one year, and what they pass over."""

    year: int
    standing: list[Standing] = field(default_factory=list)
    set_aside: list[Note] = field(default_factory=list)

    @property
    def submissions(self) -> list[Submission]:
        return [s.document for s in self.standing if isinstance(s.document, Submission)]

    @property
    def withdrawals(self) -> list[Standing]:
        return [s for s in self.standing if isinstance(s.document, Withdrawal)]


def recheck(record: Record, trust: TrustRegistry, specs: list[IndicatorSpec],
            policy: Policy, catalogue: str | None = None) -> tuple[Document | None, list[str]]:
    """Check one stored record as intake checked it, at the time it was received, and
    against what intake recorded; ``(document, [])`` when it is sound."""
    at = record.received_at
    try:
        opened = open_document(json.loads(record.envelope), trust, at)
    except ValueError as exc:
        return None, [f"the stored envelope does not verify: not JSON ({exc})"]
    except ApiError as exc:
        return None, [f"the stored envelope does not verify: {exc}"]
    try:
        judge(opened.doc, specs, catalogue or catalogue_sha256(specs), policy, at)
    except ApiError as exc:
        return None, [str(exc)]
    doc, problems = opened.doc, []
    if opened.keyid != record.keyid:
        problems.append("verified by another key than the one recorded at intake")
    if opened.country != record.country:
        problems.append(f"the key signs for {opened.country}, not {record.country}")
    if hashlib.sha256(opened.payload).hexdigest() != record.payload_sha256:
        problems.append("the payload differs from the one received (hash mismatch)")
    if (doc.submission_id, doc.country, doc.period.year, doc.revision, doc.catalogue) != (
            record.submission_id, record.country, record.year, record.revision,
            record.catalogue):
        problems.append("the stored index columns differ from the signed payload")
    return (doc if not problems else None), problems


def period_view(records: Iterable[Record], year: int, trust: TrustRegistry,
                specs: list[IndicatorSpec], policy: Policy) -> PeriodView:
    """The standing revision per country for ``year`` and a note for each one passed over."""
    catalogue = catalogue_sha256(specs)
    view = PeriodView(year)
    by_country: dict[str, list[Record]] = {}
    for r in records:
        if r.year == year:
            by_country.setdefault(r.country, []).append(r)
    for country in sorted(by_country):
        current = [r for r in by_country[country] if r.catalogue == catalogue]
        other = len(by_country[country]) - len(current)
        for r in sorted(current, key=lambda r: r.revision, reverse=True):
            doc, problems = recheck(r, trust, specs, policy, catalogue)
            if doc is not None:
                view.standing.append(Standing(r, doc))
                break
            view.set_aside.append(Note(country, year, r.submission_id, r.revision,
                                       "; ".join(problems)))
        if other and not current:
            view.set_aside.append(Note(country, year, "", 0, f"{other} revision(s) computed "
                                       "with another indicator catalogue release; the "
                                       "country must submit with the current catalogue"))
    return view
