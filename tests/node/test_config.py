"""node.toml: a careless file must stop with a message that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import NodeConfig, load_node_config, write_node_config

BASE = '[node]\ncountry = "NO"\nyear = 2025\ndata = "d.parquet"\nkey = "NO.pem"\noutbox = "out"\n'


def _load(tmp_path: Path, extra: str = "") -> NodeConfig:
    path = tmp_path / "cfg" / "node.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(BASE + extra, encoding="utf-8")
    return load_node_config(path)


def test_audit_log_and_workdir_default_beside_the_config_file(tmp_path: Path) -> None:
    cfg = _load(tmp_path)
    here = (tmp_path / "cfg").resolve()
    assert cfg.audit_log == here / "audit.jsonl"
    assert cfg.workdir == here / "work"
    assert cfg.hub_key is None and cfg.disclosure_threshold == 5


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _load(tmp_path, 'hub_url = "http://h:1/"\nhub_key = "keys/hub-key.pub"\n'
                          'audit_log = "logs/a.jsonl"\nworkdir = "/abs/work"\n')
    here = (tmp_path / "cfg").resolve()
    assert cfg.hub_key == here / "keys" / "hub-key.pub"
    assert cfg.audit_log == here / "logs" / "a.jsonl"
    assert cfg.workdir == Path("/abs/work")
    assert cfg.hub_url == "http://h:1"


def test_hub_url_without_hub_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"hub_key is required when hub_url is set.*"
                                         r"hub-key\.pub") as info:
        _load(tmp_path, 'hub_url = "http://127.0.0.1:8750"\n')
    assert "Value error" not in str(info.value)
    with pytest.raises(ValueError, match="hub_key is required"):
        _load(tmp_path, 'hub_url = "http://127.0.0.1:8750"\nhub_key = ""\n')


@pytest.mark.parametrize("threshold", [0, 1, 2])
def test_a_threshold_below_the_federation_floor_is_refused(tmp_path: Path,
                                                          threshold: int) -> None:
    with pytest.raises(ValueError, match="disclosure_threshold"):
        _load(tmp_path, f"disclosure_threshold = {threshold}\n")
    assert _load(tmp_path, "disclosure_threshold = 3\n").disclosure_threshold == 3


def test_written_config_round_trips_awkward_paths(tmp_path: Path) -> None:
    cfg = NodeConfig(country="NO", year=2025, data=Path('my "data"\\NO.parquet'),
                     key=Path("NO.pem"), outbox=Path("out box"), hub_url="http://h:1",
                     hub_key=Path("hub key.pub"), audit_log=Path("ä/audit.jsonl"),
                     disclosure_threshold=7)
    path = tmp_path / "node.toml"
    write_node_config(path, cfg)
    back = load_node_config(path)
    assert back.data == tmp_path.resolve() / 'my "data"\\NO.parquet'
    assert back.hub_key == tmp_path.resolve() / "hub key.pub"
    assert back.audit_log == tmp_path.resolve() / "ä" / "audit.jsonl"
    assert back.workdir == tmp_path.resolve() / "work"
    assert back.disclosure_threshold == 7 and back.hub_url == "http://h:1"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="audit_logs: Extra inputs are not permitted"):
        _load(tmp_path, 'audit_logs = "x"\n')
