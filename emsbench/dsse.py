"""DSSE (Dead Simple Signing Envelope) with Ed25519 keys.

The envelope is the standard one (https://github.com/secure-systems-lab/dsse): the
signature is over PAE(payloadType, payload) and the payload travels base64-encoded, so the
verifier checks the exact bytes that were signed and no JSON canonicalisation is needed.
Key ids are the SHA-256 of the raw 32-byte public key, hex encoded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PAYLOAD_TYPE = "application/vnd.emsbench.submission+json"


class SignatureError(ValueError):
    """The envelope is malformed or no signature verifies against a trusted key.

    ``code`` names the reason in a machine-readable way so the hub can map it to an HTTP
    status: ``invalid_envelope``, ``unsigned``, ``untrusted_key`` or ``bad_signature``.
    """

    def __init__(self, message: str, code: str = "invalid_envelope") -> None:
        super().__init__(message)
        self.code = code


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: the exact bytes that are signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


@dataclass(frozen=True)
class KeyPair:
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def keyid(self) -> str:
        return key_id(self.public_key)


def generate_key() -> KeyPair:
    return KeyPair(Ed25519PrivateKey.generate())


def save_private_key(key: KeyPair, path: Path) -> None:
    """Write the private key as unencrypted PKCS#8 PEM, readable by the owner only.

    The file is created with mode 0600 by the same call that creates it, so there is no
    moment in which another user could open it (writing first and chmodding after leaves
    a window at 0644). O_EXCL refuses an existing file, and a symlink planted at ``path``,
    with FileExistsError: a node must never lose its identity by accident.
    """
    pem = key.private_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # The umask can only narrow the mode given to open; fchmod makes it exactly 0600
        # (on the open descriptor, so it cannot be redirected to another file).
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file object owns the descriptor now and closes it
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        # A partial key file would make the next keygen refuse and the node fail to sign.
        path.unlink(missing_ok=True)
        raise


def load_private_key(path: Path) -> KeyPair:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SignatureError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 private key")
    return KeyPair(key)


def sign(payload: bytes, key: KeyPair, payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    """Return a DSSE envelope (a JSON-ready dict) over the exact ``payload`` bytes."""
    sig = key.private_key.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key.keyid, "sig": base64.b64encode(sig).decode("ascii")}],
    }


def _open(envelope: Any, payload_type: str) -> tuple[bytes, list[Any]]:
    """The payload bytes and the signature entries of a well-formed envelope."""
    if not isinstance(envelope, dict):
        raise SignatureError("the envelope must be a JSON object")
    if envelope.get("payloadType") != payload_type:
        raise SignatureError(f"payloadType must be {payload_type!r}")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureError("payload is missing or not base64") from exc
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise SignatureError("the envelope carries no signature", code="unsigned")
    return payload, sigs


def _verified(sigs: list[Any], trusted: Mapping[str, Ed25519PublicKey], payload_type: str,
              payload: bytes) -> tuple[list[str], bool]:
    """Ids of the trusted keys whose signatures verify, in order (repeats kept), and
    whether any signature was by a trusted key at all."""
    good: list[str] = []
    known = False
    for entry in sigs:
        if not isinstance(entry, dict):
            continue
        kid = str(entry.get("keyid", ""))
        key = trusted.get(kid)
        if key is None:
            continue
        known = True
        try:
            key.verify(base64.b64decode(entry.get("sig", ""), validate=True),
                       pae(payload_type, payload))
        except (InvalidSignature, TypeError, ValueError):  # TypeError: sig not a string
            continue
        good.append(kid)
    return good, known


def verify(envelope: Any, trusted: Mapping[str, Ed25519PublicKey],
           payload_type: str = PAYLOAD_TYPE) -> tuple[bytes, str]:
    """Verify an envelope against trusted keys (keyid → key).

    Returns the payload bytes and the id of the first key that verified. Raises
    SignatureError with a reason when the envelope is malformed, unsigned, signed by an
    unknown key or does not verify.
    """
    payload, sigs = _open(envelope, payload_type)
    good, known = _verified(sigs, trusted, payload_type, payload)
    if good:
        return payload, good[0]
    if not known:
        raise SignatureError("no signature is by a key in the trust registry",
                             code="untrusted_key")
    raise SignatureError("the signature does not verify: the payload or signature was altered",
                         code="bad_signature")


def add_signature(envelope: dict[str, Any], key: KeyPair,
                  payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    """A copy of ``envelope`` with one more signature over the same payload (DSSE allows
    several signatures; a release is signed by several approvers)."""
    payload, sigs = _open(envelope, payload_type)
    sig = key.private_key.sign(pae(payload_type, payload))
    others = [s for s in sigs if not (isinstance(s, dict) and s.get("keyid") == key.keyid)]
    return {**envelope, "signatures": [*others, {"keyid": key.keyid,
                                                 "sig": base64.b64encode(sig).decode("ascii")}]}


def verify_all(envelope: Any, trusted: Mapping[str, Ed25519PublicKey],
               payload_type: str = PAYLOAD_TYPE) -> tuple[bytes, set[str]]:
    """The payload and the distinct trusted keys whose signatures verify (a key counts
    once however often it signed; possibly none)."""
    payload, sigs = _open(envelope, payload_type)
    return payload, set(_verified(sigs, trusted, payload_type, payload)[0])


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """Serialise an envelope for the outbox and the wire."""
    return json.dumps(envelope, indent=2).encode("utf-8")
