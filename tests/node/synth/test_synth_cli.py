"""The ``emsbench synth`` command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from emsbench.cli import CommandError, main
from node.synth.cli import register, run


def test_writes_the_file_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no.parquet"
    assert main(["synth", "--country", "no", "--year", "2025", "--out", str(out),
                 "--rows", "1200", "--seed", "3"]) == 0
    assert pq.ParquetFile(out).metadata.num_rows == 1200
    captured = capsys.readouterr()
    assert str(out) in captured.out and "1200 rows" in captured.out
    assert "1,200 / 1,200 rows (100%)" in captured.err


def test_progress_no_more_often_than_every_five_percent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_generate(country: str, year: int, out: Path, rows: int | None = None,
                      seed: int = 0, progress: object = None) -> int:
        assert callable(progress)
        for done in range(1_000, 100_001, 1_000):  # 100 calls of 1 % each
            progress(done, 100_000)
        return 100_000

    monkeypatch.setattr("node.synth.generator.generate", fake_generate)
    assert main(["synth", "--country", "US", "--year", "2024", "--out", str(tmp_path / "x"),
                 "--rows", "100000"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 20 and lines[0].endswith("(5%)") and lines[-1].endswith("(100%)")


def test_unknown_country_lists_the_valid_ones(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "--country", "XX", "--year", "2025",
                              "--out", str(tmp_path / "x.parquet")])
    assert args.func is run
    with pytest.raises(CommandError, match="NO, SE, DK, FI, IS, US"):
        run(args)
    assert main(["synth", "--country", "XX", "--year", "2025",
                 "--out", str(tmp_path / "x.parquet")]) == 2
    assert "valid countries" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
