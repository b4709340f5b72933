"""The ``emsbench`` command as a user meets it: the demo, keys, and errors that say what to do."""

from __future__ import annotations

import csv
import json
import os
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


def test_demo_federates_six_countries_into_a_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = _run("demo", "--out", str(out), "--scale", "0.005")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 countries merged" in proc.stdout
    # The nodes ran the catalogue as a release signed by 2 of 3 approvers.
    assert "catalogue release signed by 2 of 3 approvers" in proc.stdout
    gate = _run("specs", "check-release", "--release", str(out / "catalogue" / "release.json"),
                "--approvers", str(out / "catalogue" / "approvers.toml"))
    assert gate.returncode == 0 and "approved by demo approver 1, demo approver 2" in gate.stdout
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    titles = ["Bystander CPR", "Response time, median", "Response time, 90th percentile",
              "Survival in the Utstein comparator group",
              "12-lead ECG within 10 minutes of patient contact",
              "Hospital pre-notified of suspected stroke"]
    for text in [*titles, *COUNTRIES, "Nordic pooled"]:
        assert text in html
    with (out / "results.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"indicator_id", "country", "year", "stratum", "numerator", "denominator",
            "value"} <= set(rows[0])
    assert {r["country"] for r in rows} == {*COUNTRIES, "NORDIC"}
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
    # Every node holds exactly one submission, delivered: a receipt signed by the hub's key.
    hub_key = load_hub_key(out / "hub" / "hub-key.pub")
    for c in COUNTRIES:
        [entry] = read_outbox(out / "nodes" / c / "outbox", hub_key)
        assert entry.status == "delivered" and entry.kind == "submission", entry
        assert verify_log(out / "nodes" / c / "audit.jsonl") == (2, [])  # signed, delivered


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
