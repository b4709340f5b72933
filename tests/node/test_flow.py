"""``emsbench node run`` as a whole (Prefect flow): no row-level residue survives a run,
whether the previous one crashed or this one fails, and each run is the next revision."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

import yaml

from emsbench.specs import default_spec_dir
from node.audit import verify_log
from node.outbox import read_outbox


def test_run_clears_crash_residue_keeps_workdir_private_and_numbers_revisions(
        tmp_path: Path, node_factory: Any, synthetic_data: Path, prefect_harness: None,
        cli: Any, flow_log: list[str]) -> None:
    node = node_factory(tmp_path, data=synthetic_data)
    config = str(node.config_path)
    work = node.cfg.workdir
    work.mkdir(mode=0o755)
    work.chmod(0o755)
    (work / "missions.duckdb").write_bytes(b"rows of a run that crashed")
    (work / "missions.duckdb.wal").write_bytes(b"more rows")
    first = cli("node", "run", "--config", config)
    assert first.code == 0, first.err
    assert list(work.iterdir()) == []
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert any("did not finish: missions.duckdb, missions.duckdb.wal" in m for m in flow_log)
    assert "(revision 1) written to" in first.out and "set hub_url and hub_key" in first.out

    second = cli("node", "run", "--config", config)
    assert second.code == 0 and "(revision 2) written to" in second.out
    assert list(work.iterdir()) == []
    entries = read_outbox(node.cfg.outbox)
    assert [(e.revision, e.status) for e in entries] == [(1, "superseded"), (2, "pending")]
    assert verify_log(node.cfg.audit_log) == (2, [])

    status = cli("node", "status", "--config", config)
    lines = status.out.splitlines()
    assert "revision 2" in lines[0] and "pending" in lines[0]  # newest first
    assert "revision 1" in lines[1] and "superseded" in lines[1]
    assert lines[2].startswith("2 in the outbox: 1 pending, 1 superseded;")


def test_a_run_that_fails_in_compute_leaves_nothing_behind(
        tmp_path: Path, node_factory: Any, synthetic_data: Path, prefect_harness: None,
        cli: Any) -> None:
    specs = tmp_path / "specs"
    # Without the release history: these specs are edited in place on purpose.
    shutil.copytree(default_spec_dir(), specs,
                    ignore=shutil.ignore_patterns("*.py", "releases"))
    bcpr = yaml.safe_load((specs / "BCPR.yaml").read_text(encoding="utf-8"))
    # Passes validation on the empty model table, fails on the first real row ('U1').
    bcpr["population"] = "CAST(urgency_level AS INTEGER) > 0"
    (specs / "BCPR.yaml").write_text(yaml.safe_dump(bcpr), encoding="utf-8")
    node = node_factory(tmp_path / "node", data=synthetic_data, specs=specs)
    result = cli("node", "run", "--config", str(node.config_path))
    assert result.code == 2
    assert "BCPR" in result.error
    assert list(node.cfg.workdir.iterdir()) == []
    assert read_outbox(node.cfg.outbox) == []
    assert not node.cfg.audit_log.exists()
