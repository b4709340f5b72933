"""The working folder: private, emptied before and after every run, and nothing else lost."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from node.workspace import WorkspaceBusy, workspace


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_crash_residue_is_removed_at_start_and_named(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "missions.duckdb.tmp").mkdir(parents=True)
    (work / "missions.duckdb.tmp" / "spill.bin").write_bytes(b"rows")
    (work / "missions.duckdb").write_bytes(b"rows")
    (work / "missions.duckdb.wal").write_bytes(b"rows")
    with workspace(work) as ws:
        assert ws.removed == ("missions.duckdb", "missions.duckdb.tmp", "missions.duckdb.wal")
        assert list(work.iterdir()) == []
        ws.database.write_bytes(b"this run's rows")
    assert list(work.iterdir()) == []


def test_working_files_go_even_when_the_run_fails(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="compute failed"), workspace(work) as ws:
        ws.database.write_bytes(b"rows")
        (work / "missions.duckdb.wal").write_bytes(b"rows")
        raise RuntimeError("compute failed")
    assert list(work.iterdir()) == []


def test_folder_is_private_whether_new_or_left_open(tmp_path: Path) -> None:
    new = tmp_path / "a" / "work"
    with workspace(new):
        assert _mode(new) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o777)
    old.chmod(0o777)
    with workspace(old):
        assert _mode(old) == 0o700
    assert _mode(old) == 0o700


def test_a_workdir_pointed_at_a_folder_of_other_files_loses_none_of_them(tmp_path: Path) -> None:
    precious = tmp_path / "report.docx"
    precious.write_bytes(b"mine")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-target.duckdb"
    elsewhere.write_bytes(b"not the node's")
    (tmp_path / "missions.duckdb").symlink_to(elsewhere)
    with workspace(tmp_path) as ws:
        assert ws.removed == ("missions.duckdb",)
    assert precious.read_bytes() == b"mine"
    assert elsewhere.read_bytes() == b"not the node's"  # the link went, not its target
    elsewhere.unlink()


def test_a_second_run_cannot_take_the_folder_of_a_running_one(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with workspace(work) as ws:
        ws.database.write_bytes(b"first run's rows")
        with pytest.raises(WorkspaceBusy, match="another node run is using"), workspace(work):
            pass
        assert ws.database.read_bytes() == b"first run's rows"
    with workspace(work):  # free again afterwards
        pass
