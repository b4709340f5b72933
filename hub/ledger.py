"""Which stored revision of each period stands, re-checked from the signed bytes up.

The store keeps every revision ever accepted. Before anything is merged or published, each
record is checked again with intake's own functions (``hub.verification``): the envelope's
signature against the trust registry (retired keys included), the key's country and its
validity *at the time the hub received the record* (so a key revoked as of its compromise
discredits what it signed afterwards), the wire model and ``emsbench.conformance`` under
the catalogue release it names (if the hub still accepts it) and today's policy; then the
payload hash and index columns against what intake recorded. Per country and release the
highest revision that passes is a candidate, and the candidate received last stands; a
withdrawal standing means the country is not published. Every record passed over is
reported with its reason, so the report can say why a figure is missing instead of failing
for everyone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from emsbench.conformance import Policy
from emsbench.wire import Document, Submission, Withdrawal
from hub.catalogues import Catalogues
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


def recheck(record: Record, trust: TrustRegistry, catalogues: Catalogues,
            policy: Policy) -> tuple[Document | None, list[str]]:
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
        judge(opened.doc, catalogues, policy, at)
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
                catalogues: Catalogues, policy: Policy) -> PeriodView:
    """The standing revision per country for ``year`` and a note for each one passed over.

    Revisions count within one catalogue release, so each release a country used has its
    own highest sound revision; of those, the one the hub received last stands (a country
    that moves to a new release, or back, says so by submitting)."""
    view = PeriodView(year)
    by_country: dict[str, list[Record]] = {}
    for r in records:
        if r.year == year:
            by_country.setdefault(r.country, []).append(r)
    for country in sorted(by_country):
        candidates: list[Standing] = []
        unknown = 0
        for catalogue in sorted({r.catalogue for r in by_country[country]}):
            if catalogues.get(catalogue) is None:
                unknown += sum(r.catalogue == catalogue for r in by_country[country])
                continue
            mine = [r for r in by_country[country] if r.catalogue == catalogue]
            for r in sorted(mine, key=lambda r: r.revision, reverse=True):
                doc, problems = recheck(r, trust, catalogues, policy)
                if doc is not None:
                    candidates.append(Standing(r, doc))
                    break
                view.set_aside.append(Note(country, year, r.submission_id, r.revision,
                                           "; ".join(problems)))
        candidates.sort(key=lambda s: (s.record.received_at, s.record.submission_id))
        if candidates:
            stands = candidates[-1]
            view.standing.append(stands)
            name = catalogues.name_of(stands.record.catalogue)
            view.set_aside += [Note(country, year, c.record.submission_id, c.record.revision,
                                    f"release {catalogues.name_of(c.record.catalogue)}: "
                                    f"superseded by {stands.record.submission_id} under "
                                    f"release {name}, received later")
                               for c in candidates[:-1]]
        if unknown:
            view.set_aside.append(Note(country, year, "", 0, f"{unknown} revision(s) computed "
                                       "with a catalogue release this hub no longer accepts "
                                       f"(it accepts {catalogues.describe()})"))
    return view
