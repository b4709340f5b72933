"""What the operator sees: the data-quality report, one clear stop for a broken export, and
Prefect runs named by country and year that are not plain green when the data needs a look."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client

from node.ingest import IngestReport
from node.outbox import read_outbox
from node.quality_report import render, warnings


def _latest_run() -> Any:
    async def read() -> Any:
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=50)
            return max(runs, key=lambda r: r.created)
    return asyncio.run(read())


def test_run_writes_the_quality_report_and_is_named_and_flagged(
        tmp_path: Path, node_factory: Any, synthetic_data: Path, prefect_harness: None,
        cli: Any) -> None:
    node = node_factory(tmp_path, data=synthetic_data)
    run = cli("node", "run", "--config", str(node.config_path))
    assert run.code == 0, run.err
    assert "rows read 3,000, accepted" in run.out and "rejects file" in run.out
    page = (node.cfg.reports / "data-quality-2025.html").read_text(encoding="utf-8")
    assert "<h2>Completeness of accepted rows</h2>" in page and "eTimes.07" in page
    assert "Per month of the call" in page
    flow_run = _latest_run()
    assert flow_run.name == "node-NO-2025-r1"  # country, year and the revision it signed
    # the synthetic file has planted bad rows: the run completes, but not plain green
    assert flow_run.state.name == "Completed with warnings"
    assert "rows rejected" in (flow_run.state.message or "")
    artifact = Artifact.get("data-quality-no-2025")
    assert artifact is not None and "rows read" in str(artifact.data)


def test_a_broken_export_stops_before_signing(
        tmp_path: Path, node_factory: Any, synthetic_data: Path, prefect_harness: None,
        cli: Any) -> None:
    table = pq.read_table(synthetic_data)
    half = table.num_rows // 2
    urgency = table.column("urgency_level").to_pylist()
    broken = table.set_column(table.schema.get_field_index("urgency_level"), "urgency_level",
                              pa.array([None] * half + urgency[half:], type=pa.string()))
    data = tmp_path / "broken.parquet"
    pq.write_table(broken, data)
    node = node_factory(tmp_path / "node", data=data)
    run = cli("node", "run", "--config", str(node.config_path))
    assert run.code == 2
    assert "more than max_rejected_share (20%)" in run.err and "nothing was signed" in run.err
    assert "Traceback" not in run.err
    assert read_outbox(node.cfg.outbox) == []
    assert (node.cfg.reports / "data-quality-2025.html").exists()  # the why is written


def test_render_names_every_finding() -> None:
    r = IngestReport(rows_read=10, rows_accepted=7,
                     rejected_by_reason={"missing:urgency_level": 3},
                     nulled_by_reason={"unparseable:lights_sirens": 2},
                     out_of_order={"arrived_scene before an earlier step": 1},
                     renamed_columns={"Urbanicity": "urbanicity"}, encoding="utf-8",
                     completeness={"arrived_scene": 5}, by_month={"03": (10, 7)})
    found = warnings(r, max_rejected_share=0.2)
    assert found[0] == "3 of 10 rows rejected (30.0 %): missing:urgency_level 3"
    assert "above the configured limit (20 %)" in found[1]
    page = render(r, "export.csv", "NO", 2025)
    for text in ("missing:urgency_level", "unparseable:lights_sirens",
                 "arrived_scene before an earlier step", "Urbanicity", "71.4 %"):
        assert text in page
    assert "<script" not in render(IngestReport(1, 1, renamed_columns={
        "<script>": "urbanicity"}), "x", "NO", 2025)


def test_each_run_logs_to_its_own_file_once(tmp_path: Path) -> None:
    """Two commands in one process: the second log gets its records once, the first none."""
    import logging

    from node.console import setup

    first = setup(tmp_path / "a" / "node.log")
    logging.getLogger("prefect.emsbench-test").warning("first run")
    second = setup(tmp_path / "b" / "node.log")
    logging.getLogger("prefect.emsbench-test").warning("second run")
    assert "second run" not in first.read_text(encoding="utf-8")
    assert second.read_text(encoding="utf-8").count("second run") == 1


def test_a_flow_run_keeps_the_log_its_command_set_up(tmp_path: Path) -> None:
    """``log_to`` (called by every flow run, for ``node serve``) leaves the handler of
    ``node run --debug`` in place, also when the reports folder is reached by a symlink;
    in a process without one it adds the node's log."""
    import logging

    from node import console

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    log = console.setup(tmp_path / "link" / "node.log", debug=True)
    [handler] = console._installed
    console.log_to(tmp_path / "link" / "node.log")
    assert console._installed == [handler] and handler.level == logging.DEBUG
    logging.getLogger("prefect.emsbench-test").warning("kept")
    assert log.read_text(encoding="utf-8").count("kept") == 1
    console.log_to(tmp_path / "served" / "node.log")
    logging.getLogger("prefect.emsbench-test").warning("served run")
    assert "served run" in (tmp_path / "served" / "node.log").read_text(encoding="utf-8")
    assert "served run" not in log.read_text(encoding="utf-8")
