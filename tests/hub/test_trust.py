"""Trust registry: round trip through the TOML file, key ids, and clear errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from emsbench import dsse
from hub.trust import TrustError, TrustRegistry, write_registry


def b64(key: dsse.KeyPair) -> str:
    return dsse.public_key_b64(key.public_key)


def test_round_trip_maps_key_ids_to_countries(tmp_path: Path) -> None:
    no1, no2, se = dsse.generate_key(), dsse.generate_key(), dsse.generate_key()
    path = tmp_path / "trust.toml"
    write_registry(path, {"NO": [b64(no1), b64(no2)], "SE": [b64(se)]})
    reg = TrustRegistry.load(path)
    assert set(reg.keys()) == {no1.keyid, no2.keyid, se.keyid}
    assert reg.country_of(no2.keyid) == "NO" and reg.country_of(se.keyid) == "SE"
    assert reg.countries() == ["NO", "SE"] and len(reg) == 3
    # The keys are the real public keys: an envelope signed by no1 verifies with them.
    env = dsse.sign(b"payload", no1)
    assert dsse.verify(env, reg.keys()) == (b"payload", no1.keyid)


def test_unknown_key_id(tmp_path: Path) -> None:
    write_registry(tmp_path / "t.toml", {"NO": [b64(dsse.generate_key())]})
    with pytest.raises(KeyError, match="not in the trust registry"):
        TrustRegistry.load(tmp_path / "t.toml").country_of("0" * 64)


def test_keys_returns_a_copy(tmp_path: Path) -> None:
    write_registry(tmp_path / "t.toml", {"NO": [b64(dsse.generate_key())]})
    reg = TrustRegistry.load(tmp_path / "t.toml")
    reg.keys().clear()
    assert len(reg.keys()) == 1


@pytest.mark.parametrize(("entry", "needle"), [
    ('"not base64!"', "countries.FI.keys[0]"),
    (f'"{base64.b64encode(b"x" * 31).decode()}"', "countries.FI.keys[0]"),
    ("42", "expected a base64 string"),
])
def test_bad_key_names_the_country(tmp_path: Path, entry: str, needle: str) -> None:
    path = tmp_path / "trust.toml"
    path.write_text(f'[countries.NO]\nkeys = ["{b64(dsse.generate_key())}"]\n'
                    f"[countries.FI]\nkeys = [{entry}]\n")
    with pytest.raises(TrustError) as info:
        TrustRegistry.load(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_a_key_may_sign_for_one_country_only(tmp_path: Path) -> None:
    shared = b64(dsse.generate_key())
    with pytest.raises(TrustError, match="both NO and SE"):
        write_registry(tmp_path / "t.toml", {"NO": [shared], "SE": [shared]})
    assert not (tmp_path / "t.toml").exists()


@pytest.mark.parametrize(("text", "needle"), [
    ('[countries.norway]\nkeys = []\n', "two capital letters"),
    ('[countries.NO]\nkeys = "abc"\n', "must be a list"),
    ('[countries.NO]\nkey = []\n', "exactly one key"),
    ("countries = 3\n", "must be a table"),
    ("[countries.NO\n", "not valid TOML"),
])
def test_malformed_registry(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "t.toml").write_text(text)
    with pytest.raises(TrustError, match=needle):
        TrustRegistry.load(tmp_path / "t.toml")


def test_missing_registry_file(tmp_path: Path) -> None:
    with pytest.raises(TrustError, match="does not exist"):
        TrustRegistry.load(tmp_path / "absent.toml")


def test_trust_error_is_a_value_error() -> None:
    # create_app callers (the CLI) catch ValueError for every configuration problem.
    assert issubclass(TrustError, ValueError)
