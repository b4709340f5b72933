"""Key pairs for nodes: the private key stays with the node, the public key goes to the hub."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from emsbench import dsse


def keygen(private_path: Path) -> tuple[Path, str]:
    """Write a new Ed25519 private key (PEM), ``<name>.pub`` (base64 raw public key, for the
    hub's trust registry) and ``<name>.pub.pem`` (the public key as PEM).

    Refuses to overwrite an existing key so a node cannot lose its identity by accident.
    """
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists; remove it first to make a new key")
    key = dsse.generate_key()
    dsse.save_private_key(key, private_path)
    pub = dsse.public_key_b64(key.public_key)
    pub_path = private_path.with_suffix(".pub")
    pub_path.write_text(pub + "\n", encoding="utf-8")
    # The same public key as PEM, for verifying envelopes with OpenSSL or other tools.
    pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.with_suffix(".pub.pem").write_bytes(pem)
    return pub_path, pub
