"""DSSE signing checked against independent verifiers, and tamper detection.

The independent checks compute PAE themselves from the DSSE specification
(https://github.com/secure-systems-lab/dsse/blob/master/protocol.md):

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the ASCII decimal byte length; they do not call ``emsbench.dsse.pae``. Then they
verify the Ed25519 signature with PyNaCl (libsodium) and with the openssl command line, so
a bug shared by our signer and our verifier cannot hide.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from emsbench import dsse

PAYLOAD = json.dumps({"country": "NO", "note": "æøå – non-ASCII on purpose"}).encode()


def spec_pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return (b"DSSEv1 " + str(len(t)).encode("ascii") + b" " + t + b" "
            + str(len(body)).encode("ascii") + b" " + body)


def raw_public(key: dsse.KeyPair) -> bytes:
    return key.public_key.public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw)


@pytest.fixture
def signed() -> tuple[dsse.KeyPair, dict[str, object]]:
    key = dsse.generate_key()
    return key, dsse.sign(PAYLOAD, key)


def _sig(envelope: dict[str, object]) -> bytes:
    sigs = envelope["signatures"]
    assert isinstance(sigs, list) and len(sigs) == 1
    return base64.b64decode(sigs[0]["sig"])


def test_envelope_shape(signed: tuple[dsse.KeyPair, dict[str, object]]) -> None:
    key, env = signed
    assert env["payloadType"] == dsse.PAYLOAD_TYPE
    assert base64.b64decode(str(env["payload"])) == PAYLOAD
    assert env["signatures"] == [{"keyid": key.keyid, "sig": env["signatures"][0]["sig"]}]  # type: ignore[index]
    import hashlib
    assert key.keyid == hashlib.sha256(raw_public(key)).hexdigest()


def test_pynacl_verifies_our_signature(signed: tuple[dsse.KeyPair, dict[str, object]]) -> None:
    key, env = signed
    verify_key = VerifyKey(raw_public(key))
    message = spec_pae(str(env["payloadType"]), base64.b64decode(str(env["payload"])))
    assert verify_key.verify(message, _sig(env)) == message
    # The signature is over PAE, not over the bare payload.
    with pytest.raises(BadSignatureError):
        verify_key.verify(PAYLOAD, _sig(env))


def test_openssl_verifies_our_signature(tmp_path: Path,
                                        signed: tuple[dsse.KeyPair, dict[str, object]]) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, env = signed
    pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    (tmp_path / "sig.bin").write_bytes(_sig(env))

    def run(message: bytes) -> subprocess.CompletedProcess[str]:
        (tmp_path / "pae.bin").write_bytes(message)
        return subprocess.run(
            [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin",
             "-in", "pae.bin", "-sigfile", "sig.bin"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30)

    good = run(spec_pae(dsse.PAYLOAD_TYPE, PAYLOAD))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Signature Verified Successfully" in good.stdout
    # Control: openssl really checks, it refuses a different message.
    bad = run(spec_pae(dsse.PAYLOAD_TYPE, PAYLOAD + b" "))
    assert bad.returncode != 0


def test_our_pae_matches_the_spec() -> None:
    assert dsse.pae("t/x", b"hello") == spec_pae("t/x", b"hello") == b"DSSEv1 3 t/x 5 hello"


def test_verify_round_trip(signed: tuple[dsse.KeyPair, dict[str, object]]) -> None:
    key, env = signed
    assert dsse.verify(env, {key.keyid: key.public_key}) == (PAYLOAD, key.keyid)


@pytest.mark.parametrize("index", [0, 1, len(PAYLOAD) // 2, len(PAYLOAD) - 1])
def test_flipped_payload_byte_fails(signed: tuple[dsse.KeyPair, dict[str, object]],
                                    index: int) -> None:
    key, env = signed
    payload = bytearray(PAYLOAD)
    payload[index] ^= 0x01
    env = {**env, "payload": base64.b64encode(bytes(payload)).decode()}
    with pytest.raises(dsse.SignatureError) as info:
        dsse.verify(env, {key.keyid: key.public_key})
    assert info.value.code == "bad_signature"


@pytest.mark.parametrize("index", [0, 31, 63])
def test_flipped_signature_byte_fails(signed: tuple[dsse.KeyPair, dict[str, object]],
                                      index: int) -> None:
    key, env = signed
    sig = bytearray(_sig(env))
    sig[index] ^= 0x80
    env = {**env, "signatures": [{"keyid": key.keyid, "sig": base64.b64encode(sig).decode()}]}
    with pytest.raises(dsse.SignatureError) as info:
        dsse.verify(env, {key.keyid: key.public_key})
    assert info.value.code == "bad_signature"


def test_changed_payload_type_fails(signed: tuple[dsse.KeyPair, dict[str, object]]) -> None:
    # PAE binds the type: the same signature must not verify under another type.
    key, env = signed
    env = {**env, "payloadType": "application/json"}
    with pytest.raises(dsse.SignatureError):
        dsse.verify(env, {key.keyid: key.public_key}, payload_type="application/json")


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda e, k: {**e, "signatures": []}, "unsigned"),
    (lambda e, k: {k: v for k, v in e.items() if k != "signatures"}, "unsigned"),
    (lambda e, k: {**e, "payload": "***"}, "invalid_envelope"),
    (lambda e, k: {**e, "payloadType": "text/plain"}, "invalid_envelope"),
    (lambda e, k: [e], "invalid_envelope"),
    (lambda e, k: {**e, "signatures": [{"keyid": "0" * 64, "sig": "AA=="}]}, "untrusted_key"),
    (lambda e, k: {**e, "signatures": [{"keyid": k, "sig": 7}]}, "bad_signature"),
])
def test_verify_reason_codes(signed: tuple[dsse.KeyPair, dict[str, object]], mutate: object,
                             code: str) -> None:
    key, env = signed
    with pytest.raises(dsse.SignatureError) as info:
        dsse.verify(mutate(env, key.keyid), {key.keyid: key.public_key})  # type: ignore[operator]
    assert info.value.code == code


def test_wrong_key_with_same_keyid_fails(signed: tuple[dsse.KeyPair, dict[str, object]]) -> None:
    key, env = signed
    impostor = dsse.generate_key().public_key
    with pytest.raises(dsse.SignatureError) as info:
        dsse.verify(env, {key.keyid: impostor})
    assert info.value.code == "bad_signature"


def test_signature_error_default_code_keeps_old_calls_working() -> None:
    err = dsse.SignatureError("cannot read key")
    assert isinstance(err, ValueError) and err.code == "invalid_envelope"
    assert str(err) == "cannot read key"


def test_saved_private_key_loads_back_and_is_owner_only(tmp_path: Path) -> None:
    import os  # imported here: these tests were appended below an unchanged header

    key = dsse.generate_key()
    path = tmp_path / "sub" / "node.pem"
    old = os.umask(0)  # the most permissive umask: only the mode given at creation counts
    try:
        dsse.save_private_key(key, path)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert dsse.load_private_key(path).keyid == key.keyid


def test_save_private_key_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "node.pem"
    first = dsse.generate_key()
    dsse.save_private_key(first, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        dsse.save_private_key(dsse.generate_key(), path)
    assert path.read_bytes() == before
    assert dsse.load_private_key(path).keyid == first.keyid
