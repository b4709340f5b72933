"""Key pairs for nodes: the private key stays with the node, the public key goes to the hub."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from emsbench import dsse


def keygen(private_path: Path) -> tuple[Path, str]:
    """Write a new Ed25519 private key (PEM), ``<name>.pub`` (base64 raw public key, for the
    hub's trust registry) and ``<name>.pub.pem`` (the public key as PEM).

    Refuses to overwrite an existing key (or a symlink in its place) with FileExistsError so
    a node cannot lose its identity by accident. The private key file is created with mode
    0600 (see ``dsse.save_private_key``).
    """
    pub_path = private_path.with_suffix(".pub")
    if pub_path == private_path:
        # "node.pub" as the private key: the public key written next would replace it.
        raise ValueError(f"{private_path}: the private key file must not end in .pub")
    key = dsse.generate_key()
    try:
        # No exists() check before: save_private_key creates the file with O_EXCL, which
        # is the only race-free test, and it also refuses a dangling symlink.
        dsse.save_private_key(key, private_path)
    except FileExistsError:
        raise FileExistsError(f"{private_path} exists; remove it first to make a new "
                              "key") from None
    pub = dsse.public_key_b64(key.public_key)
    pub_path.write_text(pub + "\n", encoding="utf-8")
    # The same public key as PEM, for verifying envelopes with OpenSSL or other tools.
    pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.with_suffix(".pub.pem").write_bytes(pem)
    return pub_path, pub
