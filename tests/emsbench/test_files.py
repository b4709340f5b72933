"""emsbench.files: atomic writes (mode, exclusivity, no half file) and TOML quoting."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from emsbench.files import toml_string, write_atomic


def test_write_atomic_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    write_atomic(target, b"one")
    assert target.read_bytes() == b"one" and target.stat().st_mode & 0o777 == 0o644
    target.chmod(0o640)
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o777 == 0o640
    write_atomic(target, b"secret", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]  # no temp left


def test_exclusive_never_rewrites(tmp_path: Path) -> None:
    target = tmp_path / "envelope.json"
    write_atomic(target, b"signed", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"forged", exclusive=True)
    assert target.read_bytes() == b"signed"
    assert [p.name for p in tmp_path.iterdir()] == ["envelope.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "trust.toml"
    write_atomic(target, b"old")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["trust.toml"]


def test_temp_file_is_private_before_its_mode_is_set(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    chmod = os.chmod

    def spy(path: object, mode: int, **kw: object) -> None:
        seen.append(Path(str(path)).stat().st_mode & 0o777)  # mode before the chmod
        chmod(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "chmod", spy)
    write_atomic(tmp_path / "token", b"t", mode=0o600)
    assert seen == [0o600]


@pytest.mark.parametrize("text", ['plain', 'say "hi"', "back\\slash", "line\nbreak",
                                  "tab\there", "del\x7f", 'x"\n[countries.EVIL]\nkeys=["k"]',
                                  "æøå ü 北"])
def test_toml_string_round_trips_and_cannot_break_out(text: str) -> None:
    doc = tomllib.loads(f"value = {toml_string(text)}\n")
    assert doc == {"value": text}
