"""A node runs only a catalogue release signed by enough approvers, with its specs as
signed: below the threshold, or with a spec edited after signing, it refuses before it
reads any data, and nothing is signed."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from emsbench import dsse
from emsbench.release import build_release, sign_release
from emsbench.specs import default_spec_dir, load_specs


def _gate(node: Any, specs: Path, signers: int) -> None:
    keys = [dsse.generate_key() for _ in range(3)]
    lines = ["threshold = 2"]
    for i, k in enumerate(keys):
        lines += ["[[approver]]", f'name = "wg member {i + 1}"',
                  f'key = "{dsse.public_key_b64(k.public_key)}"']
    (node.root / "approvers.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    envelope = sign_release(build_release(load_specs(specs), "2026.1", date(2026, 11, 27)),
                            keys[0])
    for k in keys[1:signers]:
        envelope = sign_release(envelope, k)
    (node.root / "release.json").write_text(json.dumps(envelope), encoding="utf-8")
    with node.config_path.open("a", encoding="utf-8") as fh:
        fh.write('release = "release.json"\napprovers = "approvers.toml"\n')


def _specs(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    # Without the release history: these specs are edited in place on purpose.
    shutil.copytree(default_spec_dir(), specs,
                    ignore=shutil.ignore_patterns("*.py", "releases"))
    return specs


def test_two_of_three_runs_one_of_three_is_refused(
        tmp_path: Path, node_factory: Any, synthetic_data: Path, prefect_harness: None,
        cli: Any, flow_log: list[str]) -> None:
    specs = _specs(tmp_path)
    approved = node_factory(tmp_path / "a", data=synthetic_data, specs=specs)
    _gate(approved, specs, signers=2)
    ok = cli("node", "run", "--config", str(approved.config_path))
    assert ok.code == 0, ok.err
    assert any("catalogue release 2026.1, approved by wg member 1, wg member 2" in m
               for m in flow_log)

    short = node_factory(tmp_path / "b", data=synthetic_data, specs=specs)
    _gate(short, specs, signers=1)
    refused = cli("node", "run", "--config", str(short.config_path))
    assert refused.code == 2
    assert "signed by 1 approver(s) (wg member 1); 2 are required" in refused.error
    assert not short.cfg.outbox.exists() or not any(short.cfg.outbox.iterdir())


def test_a_spec_edited_after_signing_is_refused(
        tmp_path: Path, node_factory: Any, synthetic_data: Path, prefect_harness: None,
        cli: Any) -> None:
    specs = _specs(tmp_path)
    node = node_factory(tmp_path / "n", data=synthetic_data, specs=specs)
    _gate(node, specs, signers=3)
    bcpr = yaml.safe_load((specs / "BCPR.yaml").read_text(encoding="utf-8"))
    bcpr["numerator"] = "coalesce(ca_bystander_aed, false)"  # same version, other meaning
    (specs / "BCPR.yaml").write_text(yaml.safe_dump(bcpr), encoding="utf-8")
    result = cli("node", "run", "--config", str(node.config_path))
    assert result.code == 2
    assert "BCPR: version 1.0.0" in result.error and "changed after signing" in result.error
    assert not node.cfg.outbox.exists() or not any(node.cfg.outbox.iterdir())


def test_release_without_approvers_is_a_config_error(tmp_path: Path, node_factory: Any,
                                                      cli: Any) -> None:
    node = node_factory(tmp_path / "n")
    with node.config_path.open("a", encoding="utf-8") as fh:
        fh.write('release = "release.json"\n')
    result = cli("node", "run", "--config", str(node.config_path))
    assert result.code == 2 and "release and approvers go together" in result.err
