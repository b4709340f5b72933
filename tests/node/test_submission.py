"""Building, checking and signing: revisions count per period and catalogue, small counts
never leave, and a document the hub would refuse is never signed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emsbench import dsse
from emsbench.specs import catalogue_sha256
from emsbench.wire import SUBMISSION_TYPE, Cell, Submission, Withdrawal
from node import audit
from node import submission as sub
from node.ingest import IngestReport
from node.outbox import read_outbox

CAT = "c" * 64


def _build(cfg: Any, report: IngestReport, results: Any) -> Callable[[str, int], Submission]:
    def build(catalogue: str, revision: int) -> Submission:
        return sub.build_submission(cfg.country, cfg.year, cfg.disclosure_threshold, report,
                                    results, catalogue=catalogue, revision=revision)
    return build


def test_row_totals_pass_the_small_count_rule() -> None:
    report = IngestReport(rows_read=4, rows_accepted=3,
                          rejected_by_reason={"missing:urgency_level": 1})
    s = sub.build_submission("IS", 2025, 5, report, [], catalogue=CAT, revision=1)
    assert s.data_quality.rows_read is None and s.data_quality.rows_accepted is None
    assert s.data_quality.rejected_by_reason == {"missing:urgency_level": None}
    big = IngestReport(rows_read=500, rows_accepted=0, rejected_by_reason={"x": 500})
    s = sub.build_submission("IS", 2025, 5, big, [], catalogue=CAT, revision=1)
    assert (s.data_quality.rows_read, s.data_quality.rows_accepted) == (500, 0)


def test_two_runs_number_revisions_1_and_2_and_a_new_catalogue_restarts(
        tmp_path: Path, node_factory: Any, computed: Any) -> None:
    node = node_factory(tmp_path)
    report, results, specs = computed
    first = sub.seal_next_revision(_build(node.cfg, report, results), "NO", 2025, specs,
                                   node.cfg)
    second = sub.seal_next_revision(_build(node.cfg, report, results), "NO", 2025, specs,
                                    node.cfg)
    assert (first.doc.revision, second.doc.revision) == (1, 2)
    assert first.doc.catalogue == catalogue_sha256(specs)
    # Another catalogue release (one spec fewer) is another series: it starts at 1.
    other = specs[:-1]

    def withdraw(year: int) -> Callable[[str, int], Withdrawal]:
        return lambda c, r: sub.build_withdrawal("NO", year, c, r, "catalogue changed")

    w = sub.seal_next_revision(withdraw(2025), "NO", 2025, other, node.cfg)
    assert w.doc.revision == 1 and w.doc.catalogue == catalogue_sha256(other)
    # Another year is another series too; the original series continues at 3.
    assert sub.seal_next_revision(withdraw(2024), "NO", 2024, specs, node.cfg).doc.revision == 1
    assert sub.seal_next_revision(withdraw(2025), "NO", 2025, specs, node.cfg).doc.revision == 3
    # A builder that ignores the period it is given is caught, not signed under it.
    with pytest.raises(ValueError, match="not NO 2023 revision 1"):
        sub.seal_next_revision(withdraw(2025), "NO", 2023, specs, node.cfg)
    # Every signature is the node's own, over the exact file bytes.
    payload, _ = dsse.verify(first.envelope, {dsse.key_id(dsse.public_key_from_b64(node.pub)):
                                              dsse.public_key_from_b64(node.pub)},
                             payload_type=SUBMISSION_TYPE)
    assert Submission.from_bytes(payload) == first.doc
    events = [link.fields for link in audit.read_log(node.cfg.audit_log)[0]]
    assert [(e["event"], e["revision"], e["year"]) for e in events] == [
        ("signed", 1, 2025), ("signed", 2, 2025), ("signed", 1, 2025), ("signed", 1, 2024),
        ("signed", 3, 2025)]
    assert events[0]["payload_sha256"] == first.payload_sha256
    assert audit.verify_log(node.cfg.audit_log)[1] == []


def test_concurrent_signing_never_reuses_a_revision(tmp_path: Path, node_factory: Any,
                                                   computed: Any) -> None:
    node = node_factory(tmp_path)
    _, _, specs = computed
    got: list[int] = []

    def seal() -> None:
        got.append(sub.seal_next_revision(
            lambda c, r: sub.build_withdrawal("NO", 2025, c, r, "concurrent"), "NO", 2025,
            specs, node.cfg).doc.revision)

    threads = [threading.Thread(target=seal) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [1, 2, 3, 4, 5, 6]


def test_a_document_the_hub_would_refuse_is_not_signed(tmp_path: Path, node_factory: Any,
                                                       computed: Any) -> None:
    node = node_factory(tmp_path)
    report, results, specs = computed
    # A released cell of 2 out of 40 (e.g. disclosure control bypassed by a bug).
    i = next(i for i, r in enumerate(results) if r.type == "share"
             and any(c.numerator is not None for c in r.cells))
    leaky = results[i].model_copy(update={"cells": [
        Cell(stratum=c.stratum, numerator=2, denominator=40) if c.numerator is not None
        else c for c in results[i].cells]})
    bad = [*results[:i], leaky, *results[i + 1:]]
    with pytest.raises(sub.SigningRefused, match=r"refusing to sign NO-2025-\w+: \d+ "
                                                 r"problem\(s\).*disclosure_violation"):
        sub.seal_next_revision(_build(node.cfg, report, bad), "NO", 2025, specs, node.cfg)
    with pytest.raises(sub.SigningRefused, match="missing_indicator"):
        sub.seal_next_revision(_build(node.cfg, report, results[1:]), "NO", 2025, specs,
                               node.cfg)
    assert read_outbox(node.cfg.outbox) == []
    assert not node.cfg.audit_log.exists()


def test_a_year_the_hub_would_not_accept_is_not_withdrawn(tmp_path: Path, node_factory: Any,
                                                          computed: Any) -> None:
    node = node_factory(tmp_path)
    with pytest.raises(sub.SigningRefused, match="year_out_of_window"):
        sub.seal_next_revision(lambda c, r: sub.build_withdrawal("NO", 2999, c, r, "future"),
                               "NO", 2999, computed[2], node.cfg)
