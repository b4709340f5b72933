"""The hub's own key: it signs every receipt, so a node holds proof of delivery.

The key is an Ed25519 private key in PEM (mode 0600), created on first start if the file
does not exist; its public half is written beside it as ``<name>.pub`` (base64 of the raw 32
bytes, the same form as a node's) for node operators to put in ``node.toml`` (``hub_key``).
Receipts travel in a DSSE envelope of type ``application/vnd.emsbench.receipt+json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emsbench import dsse
from emsbench.files import write_atomic
from emsbench.wire import RECEIPT_TYPE, Receipt


def public_key_path(private_path: Path) -> Path:
    return private_path.with_suffix(".pub")


def load_or_create_hub_key(path: Path) -> dsse.KeyPair:
    """The hub's signing key at ``path``; made (0600 from the first byte) if absent, with
    its public half written beside it if that is missing."""
    try:
        dsse.save_private_key(dsse.generate_key(), path)
    except FileExistsError:  # the usual case; or another process made it first
        pass
    key = dsse.load_private_key(path)
    pub = public_key_path(path)
    if not pub.exists():
        write_atomic(pub, (dsse.public_key_b64(key.public_key) + "\n").encode("ascii"))
    return key


def sign_receipt(receipt: Receipt, key: dsse.KeyPair) -> dict[str, Any]:
    return dsse.sign(receipt.to_bytes(), key, payload_type=RECEIPT_TYPE)
