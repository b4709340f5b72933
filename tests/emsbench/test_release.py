"""Signed catalogue releases: a threshold of approver signatures, and specs that match.

Attacks: one approver signing twice, an unknown key, a signature over other bytes, a spec
edited after signing, a spec added or dropped, a manifest swapped under the signatures.
"""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import pytest
import yaml

from emsbench import dsse
from emsbench.release import (
    Approvers,
    ReleaseError,
    build_release,
    mismatches,
    sign_release,
    verify_release,
)
from emsbench.specs import default_spec_dir, load_specs


@pytest.fixture
def keys() -> list[dsse.KeyPair]:
    return [dsse.generate_key() for _ in range(3)]


def approvers_file(tmp_path: Path, keys: list[dsse.KeyPair], threshold: int = 2) -> Path:
    lines = [f"threshold = {threshold}", ""]
    for i, k in enumerate(keys):
        lines += ["[[approver]]", f'name = "approver {i + 1}"',
                  f'key = "{dsse.public_key_b64(k.public_key)}"', ""]
    path = tmp_path / "approvers.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def signed(keys: list[dsse.KeyPair], *signers: int) -> dict:  # type: ignore[type-arg]
    envelope = sign_release(build_release(load_specs(), "2026.1", date(2026, 11, 27)),
                            keys[signers[0]])
    for i in signers[1:]:
        envelope = sign_release(envelope, keys[i])
    return envelope


def test_two_of_three_approvers_make_a_release(tmp_path: Path, keys: list) -> None:  # type: ignore[type-arg]
    approvers = Approvers.load(approvers_file(tmp_path, keys))
    release, names = verify_release(signed(keys, 0, 2), approvers)
    assert names == ["approver 1", "approver 3"] and release.name == "2026.1"
    assert mismatches(release, load_specs()) == []


@pytest.mark.parametrize("signers", [(0,), (1, 1), (2, 2, 2)])
def test_fewer_than_the_threshold_is_refused(tmp_path: Path, keys: list,  # type: ignore[type-arg]
                                             signers: tuple[int, ...]) -> None:
    approvers = Approvers.load(approvers_file(tmp_path, keys))
    envelope = signed(keys, *signers)
    # Signing twice with one key adds no second signature; forging a duplicate entry
    # by hand does not count twice either.
    envelope["signatures"] = envelope["signatures"] * 2
    with pytest.raises(ReleaseError, match="signed by 1 approver.*2 are required"):
        verify_release(envelope, approvers)


def test_outsiders_and_signatures_over_other_bytes_do_not_count(tmp_path: Path,
                                                                 keys: list) -> None:  # type: ignore[type-arg]
    approvers = Approvers.load(approvers_file(tmp_path, keys))
    outsider = dsse.generate_key()
    envelope = sign_release(signed(keys, 0), outsider)
    with pytest.raises(ReleaseError, match="signed by 1 approver"):
        verify_release(envelope, approvers)
    # The manifest swapped under two valid signatures: they no longer verify.
    good = signed(keys, 0, 1)
    other = json.loads(base64.b64decode(good["payload"]))
    other["name"] = "2026.9"
    good["payload"] = base64.b64encode(json.dumps(other).encode()).decode()
    with pytest.raises(ReleaseError, match="signed by 0 approver"):
        verify_release(good, approvers)


def test_a_spec_changed_after_signing_is_found(tmp_path: Path, keys: list) -> None:  # type: ignore[type-arg]
    release, _ = verify_release(signed(keys, 0, 1), Approvers.load(approvers_file(tmp_path,
                                                                                  keys)))
    specs = tmp_path / "specs"
    specs.mkdir()
    for path in default_spec_dir().glob("*.yaml"):
        (specs / path.name).write_bytes(path.read_bytes())
    body = yaml.safe_load((specs / "BCPR.yaml").read_text(encoding="utf-8"))
    body["numerator"] = "coalesce(ca_bystander_aed, false)"  # same version, new meaning
    (specs / "BCPR.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    (specs / "ECG-10.yaml").unlink()
    problems = mismatches(release, load_specs(specs))
    assert any(p.startswith("BCPR: version 1.0.0") and "changed after signing" in p
               for p in problems)
    assert "ECG-10: approved in release 2026.1 but missing here" in problems


@pytest.mark.parametrize(("text", "message"), [
    ("threshold = 4\n" + "".join(f'[[approver]]\nkey = "{{k{i}}}"\n' for i in range(3)),
     "threshold 4 must be between 1 and the 3"),
    ('[[approver]]\nkey = "not-base64"\n', "threshold"),
    ("threshold = 1\n[[approver]]\nname = 'x'\n", "'key' is required"),
])
def test_bad_approvers_files(tmp_path: Path, keys: list, text: str,  # type: ignore[type-arg]
                             message: str) -> None:
    b64 = {f"k{i}": dsse.public_key_b64(k.public_key) for i, k in enumerate(keys)}
    path = tmp_path / "approvers.toml"
    path.write_text(text.format(**b64), encoding="utf-8")
    with pytest.raises(ReleaseError, match=message):
        Approvers.load(path)
