"""The hub is down while the nodes run; corrections and stale resends once it is back.

Norway runs twice while the hub is stopped (revision 1 on its first data, revision 2 on
corrected data); Sweden runs once. Both runs end with the signed submissions pending in the
outbox. The hub starts; ``emsbench node send`` delivers each pending submission exactly once
(Norway's revision 1 is superseded and never sent). Resending revision 1 afterwards, as a
careless operator or a replaying attacker would, is refused, and the export keeps the
corrected figures.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

import node.flow
from emsbench.cli import main
from emsbench.demo import free_port, start_hub, stop_process, write_hub_config
from emsbench.wire import Submission
from hub.config import load_hub_config
from hub.signing import load_or_create_hub_key, public_key_path
from hub.source import open_source
from hub.trust_file import write_registry
from node.config import NodeConfig, write_node_config
from node.keys import keygen
from node.outbox import Entry, read_outbox
from node.synth.generator import generate

YEAR = 2025


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same retries, without the production backoff between them.
    monkeypatch.setattr(node.flow, "deliver_task",
                        node.flow.deliver_task.with_options(retry_delay_seconds=0))


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.hub_config = write_hub_config(root / "hub", self.port)
        load_or_create_hub_key(root / "hub" / "hub-key.pem")
        keys = {}
        for country, seed in (("NO", 1), ("SE", 2)):
            d = root / country
            d.mkdir()
            generate(country, YEAR, d / "first.parquet", rows=6000, seed=seed)
            keys[country] = [keygen(d / f"{country}.pem")[1]]
            write_node_config(d / "node.toml", NodeConfig(
                review=False, country=country, year=YEAR, data=Path("first.parquet"),
                key=Path(f"{country}.pem"), outbox=Path("outbox"),
                hub_url=f"http://127.0.0.1:{self.port}",
                hub_key=public_key_path(root / "hub" / "hub-key.pem")))
        write_registry(root / "hub" / "trust.toml", keys)

    def node(self, country: str) -> Path:
        return self.root / country / "node.toml"

    def correct(self, country: str) -> None:
        """The registry finds an error: half of the first file's rows were duplicates."""
        d = self.root / country
        table = pq.read_table(d / "first.parquet")
        pq.write_table(table.slice(0, table.num_rows // 2), d / "first.parquet")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield Site(tmp_path)


def _exported(export: Path, country: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(indicator, stratum) → (numerator, denominator) of the share rows of ``country``."""
    with export.open(encoding="utf-8", newline="") as fh:
        return {(r["indicator_id"], r["stratum"]): (r["numerator"], r["denominator"])
                for r in csv.DictReader(fh)
                if r["country"] == country and r["numerator"] and r["unit"] == "percent"}


def _released(entry: Entry) -> dict[tuple[str, str], tuple[str, str]]:
    """The same pairs as the submission in ``entry`` released them."""
    assert entry.signed is not None and isinstance(entry.signed.doc, Submission)
    return {(r.spec_id, ";".join(f"{k}={c.stratum[k]}" for k in r.strata)):
            (str(c.numerator), str(c.denominator))
            for r in entry.signed.doc.indicators for c in r.cells
            if r.type == "share" and not c.suppressed}


def test_pending_submissions_are_delivered_once_and_stale_ones_refused(
        site: Site, prefect_harness: None, quick_retries: None) -> None:
    # 1. The hub is down: every run signs, keeps its submission and says how to deliver it.
    assert main(["node", "run", "--config", str(site.node("NO"))]) == 2
    site.correct("NO")
    assert main(["node", "run", "--config", str(site.node("NO"))]) == 2
    assert main(["node", "run", "--config", str(site.node("SE"))]) == 2
    no = {e.revision: e for e in read_outbox(site.root / "NO" / "outbox")}
    assert {r: e.status for r, e in no.items()} == {1: "superseded", 2: "pending"}
    assert [e.status for e in read_outbox(site.root / "SE" / "outbox")] == ["pending"]

    proc = start_hub(site.hub_config, site.port, site.root / "hub" / "hub.log")
    try:
        # 2. The hub is up: send delivers what is pending, exactly once.
        assert main(["node", "send", "--config", str(site.node("NO"))]) == 0
        assert main(["node", "send", "--config", str(site.node("SE"))]) == 0
        assert main(["node", "send", "--config", str(site.node("NO"))]) == 0  # nothing left
        cfg = load_hub_config(site.hub_config)
        source = open_source(cfg)
        stored = source.records(YEAR)
        assert sorted((r.country, r.revision) for r in stored) == [("NO", 2), ("SE", 1)]
        accepted = [e for e in source.audit_entries() if e["outcome"] == "accepted"]
        assert len(accepted) == 2  # no resend reached the hub as a new submission
        no = {e.revision: e for e in read_outbox(site.root / "NO" / "outbox")}
        assert {r: e.status for r, e in no.items()} == {1: "superseded", 2: "delivered"}

        # 3. Revision 1 resent by hand, as the README once said was safe: refused.
        r = httpx.post(f"{cfg.url}/v1/submissions", content=no[1].path.read_bytes(),
                       headers={"content-type": "application/json"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "stale_revision"
        assert len(source.records(YEAR)) == 2

        # 4. The export (read through the running hub) publishes the corrected figures.
        out = site.root / "results.csv"
        assert main(["hub", "export", "--config", str(site.hub_config), "--year", str(YEAR),
                     "--out", str(out)]) == 0
    finally:
        stop_process(proc)
    corrected = _released(no[2])
    assert corrected and _exported(out, "NO") == corrected
    assert _released(no[1]) != corrected  # the correction changed the figures
    assert main(["node", "audit", "verify", "--config", str(site.node("NO"))]) == 0
