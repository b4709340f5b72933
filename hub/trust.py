"""Trust registry: which Ed25519 public keys may sign for which country.

The registry is a TOML file kept by the hub operator::

    [countries.NO]
    keys = ["<base64 of the raw 32-byte Ed25519 public key>", ...]

    [countries.SE]
    keys = ["..."]

A country may list several keys so a node can rotate its key without downtime (add the new
key, switch the node, remove the old key). A key belongs to exactly one country: the hub
derives the sender's country from the key that verified, and refuses payloads that claim a
different one, so one key trusted for two countries would let a node speak for both.
"""

from __future__ import annotations

import binascii
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from emsbench import dsse

COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")  # same rule as Submission.country


class TrustError(ValueError):
    """The trust registry file is missing or invalid."""


@dataclass(frozen=True)
class TrustRegistry:
    """Trusted keys by key id, each tied to one country."""

    _keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    _country: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, countries: Mapping[str, Sequence[str]],
                     source: str = "trust registry") -> TrustRegistry:
        """Build a registry from ``{country: [public_key_b64, ...]}``; raise TrustError."""
        keys: dict[str, Ed25519PublicKey] = {}
        owner: dict[str, str] = {}
        for country, encoded in countries.items():
            if not COUNTRY_PATTERN.match(country):
                raise TrustError(f"{source}: country {country!r} must be two capital letters")
            if isinstance(encoded, str) or not isinstance(encoded, Sequence):
                raise TrustError(f"{source}: countries.{country}.keys must be a list of strings")
            for i, text in enumerate(encoded):
                key = _decode_key(text, f"{source}: countries.{country}.keys[{i}]")
                kid = dsse.key_id(key)
                if kid in owner and owner[kid] != country:
                    raise TrustError(f"{source}: key {kid[:16]}… is listed for both "
                                     f"{owner[kid]} and {country}; a key may sign for one "
                                     "country only")
                keys[kid] = key
                owner[kid] = country
        return cls(keys, owner)

    @classmethod
    def load(cls, path: Path | str) -> TrustRegistry:
        """Read a registry file; raise TrustError naming the file and the bad entry."""
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrustError(f"trust registry {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustError(f"cannot read trust registry {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise TrustError(f"trust registry {path} is not valid TOML: {exc}") from exc
        countries = doc.get("countries", {})
        if not isinstance(countries, dict):
            raise TrustError(f"{path}: 'countries' must be a table of [countries.XX] tables")
        mapping: dict[str, Sequence[str]] = {}
        for country, table in countries.items():
            if not isinstance(table, dict) or set(table) != {"keys"}:
                raise TrustError(f"{path}: [countries.{country}] must hold exactly one "
                                 "key, 'keys' (a list of base64 public keys)")
            mapping[country] = table["keys"]
        return cls.from_mapping(mapping, source=str(path))

    def keys(self) -> dict[str, Ed25519PublicKey]:
        """Key id → public key, the form ``dsse.verify`` takes (a copy, safe to mutate)."""
        return dict(self._keys)

    def country_of(self, keyid: str) -> str:
        """Country the key signs for; KeyError when the key is not trusted."""
        try:
            return self._country[keyid]
        except KeyError:
            raise KeyError(f"key {keyid!r} is not in the trust registry") from None

    def countries(self) -> list[str]:
        return sorted(set(self._country.values()))

    def __len__(self) -> int:
        return len(self._keys)


def _decode_key(text: object, where: str) -> Ed25519PublicKey:
    if not isinstance(text, str):
        raise TrustError(f"{where}: expected a base64 string, got {type(text).__name__}")
    try:
        return dsse.public_key_from_b64(text.strip())
    except (binascii.Error, ValueError) as exc:
        # binascii.Error for bad base64, ValueError from cryptography for a wrong length.
        raise TrustError(f"{where}: not a base64 raw 32-byte Ed25519 public key "
                         f"({exc})") from exc


def write_registry(path: Path | str, countries: Mapping[str, Sequence[str]]) -> None:
    """Write a registry file from ``{country: [public_key_b64, ...]}``.

    The mapping is validated first (same rules as ``load``) so a demo cannot write a file
    the hub would then refuse to start with.
    """
    path = Path(path)
    TrustRegistry.from_mapping(countries, source=str(path))
    lines = ["# emsbench hub trust registry: Ed25519 public keys (base64, raw 32 bytes)",
             "# allowed to sign submissions for each country.", ""]
    for country in sorted(countries):
        # Base64 has no characters that need escaping in a TOML basic string.
        keys = ", ".join(f'"{k.strip()}"' for k in countries[country])
        lines += [f"[countries.{country}]", f"keys = [{keys}]", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
