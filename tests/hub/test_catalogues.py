"""A hub that knows a newer catalogue release still accepts nodes on the earlier one.

The earlier release is the test catalogue as released ``2026.1``; the current one changes
T-BETA's population (version 1.1.0) and adds T-GAMMA, released as ``2026.2``. Norway stays
on 2026.1 and Sweden moves to 2026.2. The hub accepts both, refuses a release it does not
know and a submission that mixes the two, publishes T-BETA once per version (never pooled)
and pools T-ALPHA and T-TIME, whose definitions did not change, across both releases.
"""

from __future__ import annotations

import csv
import shutil
import tomllib
from datetime import date
from pathlib import Path

import pytest

from emsbench.release import build_release
from emsbench.specs import load_specs
from emsbench.wire import Cell, IndicatorResult, Submission
from hub.catalogues import Catalogues, release_name
from hub.config import load_hub_config, write_hub_config
from hub.ledger import PeriodView, period_view
from hub.merge import merge
from hub.report import build_report, export_csv
from hub.trust import TrustRegistry
from tests.hub.conftest import YEAR, Hub, load_hub_bench, write_specs

BETA_V11 = '''id: T-BETA
version: 1.1.0
title: Test indicator T-BETA
description: Share of missions with lights and sirens recorded (test spec, 1.1.0).
unit: percent
direction: descriptive
type: share
population: "lights_sirens IS NOT NULL"
numerator: "lights_sirens"
strata: [urbanicity]
tests:
  - name: one mission
    rows: [{lights_sirens: true, urbanicity: urban}]
    expect: [{stratum: {urbanicity: urban}, numerator: 1, denominator: 1}]
'''
GAMMA = BETA_V11.replace("T-BETA", "T-GAMMA").replace("1.1.0", "1.0.0").replace(
    "strata: [urbanicity]", "strata: []").replace(
    "expect: [{stratum: {urbanicity: urban}, ", "expect: [{")


def released(folder: Path, name: str) -> Path:
    """Record ``folder``'s specs as release ``name`` in its own release history."""
    release = build_release(load_specs(folder), name, date(2026, 11, 1))
    (folder / "releases").mkdir(exist_ok=True)
    (folder / "releases" / f"{name}.json").write_bytes(release.to_bytes())
    return folder


def earlier_folder(tmp: Path) -> Path:
    write_specs(tmp / "2026.1")
    return released(tmp / "2026.1", "2026.1")


def current_folder(tmp: Path) -> Path:
    folder = tmp / "2026.2"
    write_specs(folder)
    (folder / "T-BETA.yaml").write_text(BETA_V11, encoding="utf-8")
    (folder / "T-GAMMA.yaml").write_text(GAMMA, encoding="utf-8")
    shutil.copytree(tmp / "2026.1" / "releases", folder / "releases")
    return released(folder, "2026.2")


@pytest.fixture
def two(tmp_path: Path) -> Hub:
    """A hub whose current release is 2026.2 and which still accepts 2026.1."""
    earlier = earlier_folder(tmp_path)
    return Hub(tmp_path, specs=current_folder(tmp_path), earlier_specs=[earlier])


def on_earlier(hub: Hub, **changes: object) -> Submission:
    old = hub.catalogues.releases[1]
    return hub.submission(catalogue=old.id, indicators=load_hub_bench().sample_results(
        list(old.specs)), **changes)


def sweden(hub: Hub) -> Submission:
    sub = hub.submission(country="SE", sid="SE-2024-0001")
    gamma = next(s for s in hub.specs if s.id == "T-GAMMA")
    extra = IndicatorResult(spec_id=gamma.id, spec_version=gamma.version,
                            spec_sha256=gamma.sha256, type="share", strata=[],
                            cells=[Cell(numerator=12, denominator=50)])
    return sub.model_copy(update={"indicators": [
        r for r in sub.indicators if r.spec_id != "T-GAMMA"] + [extra]})


def view(hub: Hub) -> PeriodView:
    return period_view(hub.store.records(YEAR), YEAR,
                       TrustRegistry.load(hub.config.trust_registry), hub.catalogues,
                       hub.config.policy.policy())


# --- loading ---------------------------------------------------------------------------


def test_releases_are_named_by_their_manifests_current_first(two: Hub) -> None:
    assert [c.name for c in two.catalogues.releases] == ["2026.2", "2026.1"]
    assert two.catalogues.current.id == two.catalogue
    assert release_name(two.tmp / "2026.2", "f" * 64) == "unreleased"
    assert two.client.get("/v1/health").json()["catalogues"] == [
        {"id": c.id, "name": c.name} for c in two.catalogues.releases]
    # every distinct definition once, newest version of an id first, in catalogue order
    assert [(s.id, s.version) for s in two.catalogues.specs()] == [
        ("T-ALPHA", "1.0.0"), ("T-BETA", "1.1.0"), ("T-BETA", "1.0.0"),
        ("T-GAMMA", "1.0.0"), ("T-TIME", "1.0.0")]
    alpha = two.catalogues.specs()[0]
    assert two.catalogues.releases_of(alpha) == ["2026.2", "2026.1"]


def test_a_version_with_two_definitions_stops_the_hub_from_starting(tmp_path: Path) -> None:
    earlier = earlier_folder(tmp_path)
    current = tmp_path / "edited"
    write_specs(current)
    # T-BETA changed meaning without a version bump (and outside any release history)
    (current / "T-BETA.yaml").write_text(BETA_V11.replace("1.1.0", "1.0.0"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"T-BETA version 1\.0\.0 has one definition in "
                       r"release unreleased .* and another in 2026\.1"):
        Hub(tmp_path / "hub", specs=current, earlier_specs=[earlier])


def test_the_same_release_twice_is_a_configuration_error(tmp_path: Path) -> None:
    earlier = earlier_folder(tmp_path)
    with pytest.raises(ValueError, match="configured twice"):
        Catalogues.load(earlier, [earlier])


def test_earlier_specs_round_trip_through_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "hub.toml").write_text(
        '[hub]\ndatabase = "hub.duckdb"\ntrust_registry = "trust.toml"\n'
        'specs = "../2026.2"\nearlier_specs = ["../2026.1"]\n', encoding="utf-8")
    cfg = load_hub_config(tmp_path / "hub" / "hub.toml")
    assert cfg.earlier_specs == [(tmp_path / "2026.1").resolve()]
    write_hub_config(tmp_path / "again.toml", cfg)
    with (tmp_path / "again.toml").open("rb") as fh:
        assert tomllib.load(fh)["hub"]["earlier_specs"] == [str(tmp_path / "2026.1")]
    assert load_hub_config(tmp_path / "again.toml") == cfg


# --- intake ----------------------------------------------------------------------------


def test_both_releases_are_accepted(two: Hub) -> None:
    assert two.post(two.envelope(on_earlier(two))).status_code == 201
    assert two.post(two.envelope(sweden(two), "SE")).status_code == 201
    assert {r.catalogue for r in two.store.records(YEAR)} == {
        c.id for c in two.catalogues.releases}


def test_an_unknown_release_is_refused_naming_the_accepted_ones(two: Hub) -> None:
    audit = len(two.store.audit_entries())
    unknown = two.submission(catalogue="e" * 64)
    r = two.post(two.envelope(unknown))
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "spec_mismatch"
    assert error["message"].startswith("spec_mismatch: catalogue eeeeeeeeeeee… is not a "
                                       "release this hub accepts (it accepts 2026.2 (")
    assert "2026.1 (" in error["message"]
    assert two.store.records() == [] and len(two.store.audit_entries()) == audit + 1


def test_a_submission_mixing_two_releases_is_refused(two: Hub) -> None:
    """Names 2026.1 but carries T-BETA 1.1.0: each result must be its release's spec."""
    mixed = on_earlier(two)
    new_beta = next(r for r in two.results() if r.spec_id == "T-BETA")
    mixed = mixed.model_copy(update={"indicators": [
        new_beta if r.spec_id == "T-BETA" else r for r in mixed.indicators]})
    r = two.post(two.envelope(mixed))
    assert r.status_code == 409 and r.json()["error"]["code"] == "spec_mismatch"
    assert "T-BETA" in r.json()["error"]["message"]
    assert two.store.records() == []


def test_the_current_release_without_its_new_indicator_is_refused(two: Hub) -> None:
    r = two.post(two.envelope(two.submission(country="SE", sid="SE-2024-0001"), "SE"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_indicator"
    assert "T-GAMMA" in r.json()["error"]["message"]


# --- ledger, merge and report -------------------------------------------------------------


def test_each_figure_is_published_under_its_own_release(two: Hub, tmp_path: Path) -> None:
    assert two.post(two.envelope(on_earlier(two))).status_code == 201
    assert two.post(two.envelope(sweden(two), "SE")).status_code == 201
    v = view(two)
    assert v.set_aside == [] and sorted(s.record.country for s in v.standing) == ["NO", "SE"]
    figures = merge(v.submissions, two.catalogues.specs(), YEAR)

    def fig(indicator: str, version: str, country: str, stratum: str = "") -> list[int | None]:
        return [f.denominator for f in figures if (f.indicator_id, f.spec_version, f.country,
                                                   f.stratum) == (indicator, version, country,
                                                                  stratum)]

    # unchanged definitions pool across releases: both countries' 100 cases
    assert fig("T-ALPHA", "1.0.0", "NORDIC") == [200]
    # T-BETA: one figure set per version, each pooling only its own country
    urban = "urbanicity=urban"
    assert fig("T-BETA", "1.0.0", "NO", urban) == [60] == fig("T-BETA", "1.0.0", "NORDIC", urban)
    assert fig("T-BETA", "1.1.0", "SE", urban) == [60] == fig("T-BETA", "1.1.0", "NORDIC", urban)
    assert fig("T-BETA", "1.0.0", "SE", urban) == [] == fig("T-BETA", "1.1.0", "NO", urban)
    nordic_beta = [f for f in figures if f.indicator_id == "T-BETA" and f.country == "NORDIC"]
    assert {f.n_countries for f in nordic_beta if f.stratum == urban} == {1}
    # T-GAMMA exists only in 2026.2: Norway has no figure, not a figure of zero cases
    assert {f.country for f in figures if f.indicator_id == "T-GAMMA"} == {"SE", "NORDIC"}

    html = build_report(v, two.catalogues, tmp_path / "report").read_text(encoding="utf-8")
    assert 'id="T-BETA-v1.1.0"' in html and 'id="T-BETA-v1.0.0"' in html
    assert 'id="T-ALPHA"' in html and "release 2026.2, 2026.1" in html
    assert html.count("<span class=\"tag\">release 2026.1</span>") == 1  # T-BETA 1.0.0 only
    provenance = html.split('id="h-provenance"')[1]
    assert "<td>2026.1</td>" in provenance.split("Norway (NO)")[1].split("</tr>")[0]
    assert "<td>2026.2</td>" in provenance.split("Sweden (SE)")[1].split("</tr>")[0]
    with export_csv(v, two.catalogues, tmp_path / "f.csv").open(encoding="utf-8") as fh:
        beta = [r for r in csv.DictReader(fh) if r["indicator_id"] == "T-BETA"]
    assert {r["spec_version"] for r in beta} == {"1.0.0", "1.1.0"}


def test_the_release_received_last_stands(two: Hub) -> None:
    assert two.post(two.envelope(on_earlier(two))).status_code == 201
    moved = two.submission(sid="NO-2024-0002")
    gamma = sweden(two).indicators[-1]
    moved = moved.model_copy(update={"indicators": [
        *(r for r in moved.indicators if r.spec_id != "T-GAMMA"), gamma]})
    assert two.post(two.envelope(moved)).status_code == 201
    v = view(two)
    [stands] = v.standing
    assert stands.record.submission_id == "NO-2024-0002"
    [note] = v.set_aside
    assert note.submission_id == "NO-2024-0001" and note.reason == (
        "release 2026.1: superseded by NO-2024-0002 under release 2026.2, received later")
    # Norway goes back to 2026.1 with a corrected revision: that is now its latest word
    back = on_earlier(two, sid="NO-2024-0003", revision=2)
    assert two.post(two.envelope(back)).status_code == 201
    assert [s.record.submission_id for s in view(two).standing] == ["NO-2024-0003"]


def test_a_hub_that_dropped_a_release_names_what_it_no_longer_accepts(
        two: Hub, tmp_path: Path) -> None:
    assert two.post(two.envelope(on_earlier(two))).status_code == 201
    assert two.post(two.envelope(sweden(two), "SE")).status_code == 201
    only_current = Catalogues([two.catalogues.current])
    v = period_view(two.store.records(YEAR), YEAR, TrustRegistry.load(
        two.config.trust_registry), only_current, two.config.policy.policy())
    assert [s.record.country for s in v.standing] == ["SE"]
    [note] = v.set_aside
    assert note.country == "NO" and "no longer accepts (it accepts 2026.2 (" in note.reason
