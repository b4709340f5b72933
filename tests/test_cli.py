"""The ``emsbench`` command as a user meets it: the demo, keys, and errors that say what to do."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from emsbench import dsse
from emsbench.cli import main
from emsbench.demo import COUNTRIES
from emsbench.specs import load_specs
from hub.trust_file import write_registry
from node.audit import verify_log
from node.outbox import read_outbox
from node.receipt import load_hub_key


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "emsbench.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=cwd)


def _merged(hub_config: Path, year: int) -> dict[tuple[str, str, str], float | None]:
    """The hub's merged figures of ``year``: (indicator, country, stratum) -> value."""
    from hub.config import load_hub_config
    from hub.merge import merge
    from hub.source import load_period

    view, catalogues = load_period(load_hub_config(hub_config), year)
    return {(f.indicator_id, f.country, f.stratum): f.value
            for f in merge(view.submissions, catalogues.specs(), year)}


def check_demo_in_a_browser(out: Path, shots: Path) -> None:
    """The issue's acceptance on the demo's own outputs: both reports and every page of the
    site render in Chromium with no console error and no request to another host
    (screenshots under ``shots``); each PDF renders every page, carries every chapter and
    cuts no table off."""
    from hub.messages import Messages
    from tests.browser import (
        check_pages,
        crawl_site,
        page_texts,
        pdf_page_count,
        render_pages,
        require_chromium,
        require_poppler,
        tables_intact,
    )

    require_chromium()
    require_poppler()
    report = out / "site" / "report" / "2025"
    checks = check_pages([report / lang / "index.html" for lang in ("en", "nb")],
                         shots / "reports")
    assert [c.problems for c in checks] == [[], []]
    site = crawl_site((out / "site" / "index.html").as_uri(), shots / "site")
    assert len(site) > 50 and [c for c in site if c.problems] == []
    for lang in ("en", "nb"):
        m, pdf = Messages(lang), report / lang / f"benchmark-2025-{lang}.pdf"
        pages = pdf_page_count(pdf)
        assert len(render_pages(pdf, shots / f"pdf-{lang}")) == pages > 20
        text = " ".join(" ".join(page_texts(pdf)).split())
        for key in ("report.summary", "chapter.dispatch", "chapter.response",
                    "chapter.cardiac_arrest", "chapter.stemi", "chapter.stroke",
                    "report.countries_chapter", "report.method", "report.provenance"):
            assert m(key) in text, (lang, key)
        html = (report / lang / "index.html").read_text(encoding="utf-8")
        assert tables_intact(html, pdf) == []


def test_demo_federates_six_countries_into_a_report(tmp_path: Path) -> None:
    from hub.store import Store

    out = tmp_path / "demo"
    proc = _run("demo", "--out", str(out), "--scale", "0.005")  # three years by default
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "every country delivered 2023-2025; 6 countries merged for 2025" in proc.stdout
    # one progress line per country-year, each with its times
    for c in COUNTRIES:
        for year in (2023, 2024, 2025):
            [line] = [x for x in proc.stdout.splitlines() if x.startswith(f"  {c} {year}: ")]
            assert "accepted, receipt verified (node " in line and " s)" in line
    # The nodes ran the catalogue as a release signed by 2 of 3 approvers.
    assert "catalogue release signed by 2 of 3 approvers" in proc.stdout
    gate = _run("specs", "check-release", "--release", str(out / "catalogue" / "release.json"),
                "--approvers", str(out / "catalogue" / "approvers.toml"))
    assert gate.returncode == 0 and "approved by demo approver 1, demo approver 2" in gate.stdout
    report = out / "site" / "report" / "2025"
    for lang in ("en", "nb"):
        assert f"report ({lang}): {report / lang / 'index.html'}" in proc.stdout
        assert f"report PDF ({lang}): {report / lang / f'benchmark-2025-{lang}.pdf'}" in \
            proc.stdout
    assert f"public site: {out / 'site' / 'index.html'}" in proc.stdout
    html = (report / "en" / "index.html").read_text(encoding="utf-8")
    # every indicator shows its trend over the three years
    for spec in load_specs():
        section = html.split(f'id="{spec.id}"')[1].split("</section>")[0]
        trend = section.split('<table class="trend">')[1].split("</table>")[0]
        assert re.findall(r'<th scope="col">(\d{4})</th>', trend) == ["2023", "2024", "2025"]
    titles = ["Bystander CPR", "Response time, median", "Response time, 90th percentile",
              "Survival in the Utstein comparator group",
              "12-lead ECG within 10 minutes of patient contact",
              "Hospital pre-notified of suspected stroke"]
    for text in [*titles, "Norway", "United States", "Nordic pooled"]:
        assert text in html
    check_demo_in_a_browser(out, tmp_path)
    with (out / "results.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"indicator_id", "country", "year", "stratum", "numerator", "denominator",
            "value"} <= set(rows[0])
    assert {r["country"] for r in rows} == {*COUNTRIES, "NORDIC"}
    assert {r["year"] for r in rows} == {"2025"}  # the export is the last year's
    # Every indicator of the catalogue is published.
    assert {r["indicator_id"] for r in rows} == {s.id for s in load_specs()}
    # Iceland at this scale is small: disclosure control must show in the report.
    assert any(r["suppressed"] == "true" for r in rows if r["country"] == "IS")
    # The same figures as open data in JSON-stat 2.0, one dataset per indicator.
    assert "open data (JSON-stat 2.0)" in proc.stdout
    collection = json.loads((out / "results.jsonstat.json").read_text(encoding="utf-8"))
    assert collection["version"] == "2.0" and collection["class"] == "collection"
    assert {d["extension"]["indicator_id"] for d in collection["link"]["item"]} == \
        {s.id for s in load_specs()}
    # The hub holds one accepted submission per country and year, each the first revision.
    with Store(out / "hub" / "hub.duckdb", read_only=True) as store:
        records = store.records()
    assert sorted((r.country, r.year) for r in records) == sorted(
        (c, y) for c in COUNTRIES for y in (2023, 2024, 2025))
    assert {(r.kind, r.revision) for r in records} == {("submission", 1)}
    # Each node (one key, outbox and audit log for all its years) delivered all three: a
    # receipt signed by the hub's key for each.
    hub_key = load_hub_key(out / "hub" / "hub-key.pub")
    for c in COUNTRIES:
        entries = read_outbox(out / "nodes" / c / "outbox", hub_key)
        assert sorted(e.submission_id[:7] for e in entries) == [f"{c}-2023", f"{c}-2024",
                                                                 f"{c}-2025"]
        assert {(e.status, e.kind) for e in entries} == {("delivered", "submission")}
        assert verify_log(out / "nodes" / c / "audit.jsonl") == (6, [])  # signed, delivered
    # The years are not copies: the merged figures of the last two differ, and missions per
    # 1,000 inhabitants rise with the volume (node.synth.trends: +2-3 % a year).
    hub_config = out / "hub" / "hub.toml"
    merged = {y: _merged(hub_config, y) for y in (2023, 2024, 2025)}
    both = [k for k in merged[2025] if k in merged[2024] and merged[2025][k] is not None
            and merged[2024][k] is not None]
    assert len(both) > 100
    assert sum(merged[2025][k] != merged[2024][k] for k in both) > 0.8 * len(both)

    def per_1000(country: str, year: int) -> float:
        value = merged[year][("MISSIONS-1000", country, "")]
        assert value is not None
        return value

    for c in ("NORDIC", "US"):
        assert per_1000(c, 2023) < per_1000(c, 2024) < per_1000(c, 2025)
    for c in ("NO", "SE", "DK", "FI"):
        assert per_1000(c, 2023) < per_1000(c, 2025)


def test_keygen_writes_a_key_pair_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "keys" / "NO.pem"
    key.parent.mkdir()
    assert main(["node", "keygen", "--out", str(key)]) == 0
    assert key.read_text(encoding="utf-8").startswith("-----BEGIN PRIVATE KEY-----")
    assert (key.stat().st_mode & 0o777) == 0o600
    assert len((tmp_path / "keys" / "NO.pub").read_text(encoding="utf-8").strip()) == 44
    pem = (tmp_path / "keys" / "NO.pub.pem").read_text(encoding="utf-8")
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert main(["node", "keygen", "--out", str(key)]) == 2
    assert "exists; remove it first" in capsys.readouterr().err


def test_errors_say_what_to_do(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["node", "run", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read node config" in capsys.readouterr().err
    bad = tmp_path / "node.toml"
    bad.write_text('[node]\ncountry = "Norway"\nyear = 2025\n', encoding="utf-8")
    assert main(["node", "run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "country" in err and "data: Field required" in err
    sends = tmp_path / "sends.toml"
    sends.write_text('[node]\ncountry = "NO"\nyear = 2025\ndata = "d.parquet"\nkey = "k.pem"\n'
                     'outbox = "out"\nhub_url = "http://127.0.0.1:8750"\n', encoding="utf-8")
    for action in ("run", "send", "status"):
        assert main(["node", action, "--config", str(sends)]) == 2
        assert "hub_key is required when hub_url is set" in capsys.readouterr().err
    with sends.open("a", encoding="utf-8") as fh:
        fh.write('hub_key = "nowhere/hub-key.pub"\n')
    assert main(["node", "send", "--config", str(sends)]) == 2
    assert "cannot read hub_key" in capsys.readouterr().err
    hub = tmp_path / "hub.toml"
    hub.write_text('[hub]\ndatabase = "hub.duckdb"\ntrust_registry = "trust.toml"\n',
                   encoding="utf-8")
    write_registry(tmp_path / "trust.toml", {"NO": [dsse.public_key_b64(
        dsse.generate_key().public_key)]})  # a hub set up, but no node has sent anything
    assert main(["hub", "report", "--config", str(hub), "--year", "2025",
                 "--out", str(tmp_path / "r")]) == 2
    assert "start the hub and run the nodes first" in capsys.readouterr().err
    assert main(["demo", "--scale", "3"]) == 2
    assert "--scale must be in (0, 1]" in capsys.readouterr().err
