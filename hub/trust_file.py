"""Writing the trust registry file: ``write_registry``, ``add_key`` and ``revoke_key``.

The registry's format and meaning are in ``hub.trust``; this module only writes the file,
always from validated entries and atomically (a temporary file in the same folder, then
``os.replace``), so a running hub (``ReloadingTrust``) never reads half a file. Rewrites
drop TOML comments: what must survive belongs in an entry's ``note``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from emsbench.files import toml_string, write_atomic
from hub.trust import TIME_FIELDS, KeyEntry, TrustedKey, TrustError, TrustRegistry, format_time


def _toml_entry(entry: TrustedKey) -> str:
    encoded = entry.as_entry()
    if isinstance(encoded, str):
        # Base64 has no characters that need escaping in a TOML basic string.
        return f'"{encoded}"'
    parts = [f'key = "{entry.public_key_b64}"']
    for name in TIME_FIELDS:
        value: datetime | None = getattr(entry, name)
        if value is not None:
            # Written in UTC: isoformat of an offset with seconds (+05:30:15) is not TOML.
            parts.append(f"{name} = {value.astimezone(UTC).isoformat()}")
    if entry.note:
        parts.append(f"note = {toml_string(entry.note)}")
    return "{ " + ", ".join(parts) + " }"  # TOML 1.0 inline tables are one line


def write_registry(path: Path | str, countries: Mapping[str, Sequence[KeyEntry]]) -> None:
    """Write a registry file from ``{country: [b64 or {"key": b64, ...}, ...]}``.

    The mapping is validated first (same rules as ``load``) so a demo cannot write a file
    the hub would then refuse to start with, and the file is written from the validated
    entries, so what is written is what was checked. The write is atomic.
    """
    path = Path(path)
    registry = TrustRegistry.from_mapping(countries, source=str(path))
    lines = ["# emsbench hub trust registry: Ed25519 public keys (base64, raw 32 bytes)",
             "# allowed to sign submissions for each country. An entry is a base64 string",
             "# (no time limit) or { key = ..., valid_from = ..., valid_until = ...,",
             "# revoked_at = ..., note = ... } with datetimes in RFC 3339 with offset.", ""]
    for country in sorted(registry._listed):
        entries = [registry.entry(kid) for kid in registry._listed[country]]
        encoded = [_toml_entry(e) for e in entries]
        if all(isinstance(e.as_entry(), str) for e in entries):
            lines += [f"[countries.{country}]", f"keys = [{', '.join(encoded)}]", ""]
        else:
            lines += [f"[countries.{country}]", "keys = ["]
            lines += [f"    {e}," for e in encoded]
            lines += ["]", ""]
    # The replaced file's mode is kept (the hub may run as another user than the operator).
    write_atomic(path, "\n".join(lines).encode("utf-8"))


def _aware(at: datetime | None, what: str) -> None:
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise TrustError(f"{what} must be timezone-aware (e.g. datetime.now(UTC))")


def revoke_key(path: Path | str, keyid_prefix: str, at: datetime, note: str) -> TrustedKey:
    """Revoke the key whose id starts with ``keyid_prefix`` from ``at`` on; rewrite the file.

    The key stays in the file so what it signed before ``at`` can still be verified. A
    revocation can only move earlier: moving it later would re-admit signatures made in
    between, which must be a deliberate edit of the file. Returns the updated entry.
    """
    path = Path(path)
    _aware(at, "the revocation time")
    prefix = keyid_prefix.strip().lower()
    # At least 8 hex characters, so a short typo cannot happen to match (and revoke) a
    # different key.
    if not re.fullmatch(r"[0-9a-f]{8,64}", prefix):
        raise TrustError(f"key id prefix {keyid_prefix!r} must be 8 to 64 hex characters")
    registry = TrustRegistry.load(path)
    matches = [e for e in registry.entries() if e.keyid.startswith(prefix)]
    if not matches:
        raise TrustError(f"{path}: no key id starts with {prefix}")
    if len(matches) > 1:
        found = ", ".join(f"{e.keyid[:16]}… ({e.country})" for e in matches)
        raise TrustError(f"{path}: {prefix} matches {len(matches)} keys ({found}); give "
                         "more characters")
    old = matches[0]
    if old.revoked_at is not None and at > old.revoked_at:
        raise TrustError(f"{path}: key {old.keyid[:16]}… of {old.country} is already revoked "
                         f"at {format_time(old.revoked_at)}, before {format_time(at)}; a "
                         "revocation can only move earlier")
    # Keep the old note and add the reason once (running the same command twice is a no-op).
    reason = note.strip()
    new_note = old.note
    if reason and reason not in old.note.split("; "):
        new_note = f"{old.note}; {reason}" if old.note else reason
    updated = replace(old, revoked_at=at, note=new_note)
    _rewrite(path, registry, old.country, old.keyid, updated)
    return TrustRegistry.load(path).entry(old.keyid)


def add_key(path: Path | str, country: str, public_key_b64: str,
            valid_from: datetime | None = None, valid_until: datetime | None = None,
            note: str = "") -> TrustedKey:
    """Trust a new key for ``country`` (in the window given); rewrite the file atomically.

    Creates the file when it does not exist yet. Refuses a key that is already listed,
    for any country: changing an existing key's window is an edit, not an addition.
    """
    path = Path(path)
    _aware(valid_from, "valid_from")
    _aware(valid_until, "valid_until")
    registry = TrustRegistry.load(path) if path.exists() else TrustRegistry()
    raw: dict[str, object] = {"key": public_key_b64.strip(), "valid_from": valid_from,
                              "valid_until": valid_until, "note": note.strip()}
    entry = TrustRegistry.from_mapping({country: [raw]}, source="new key").entries()[0]
    if entry.keyid in registry._entries:
        have = registry.entry(entry.keyid)
        raise TrustError(f"{path}: key {entry.keyid[:16]}… is already listed for "
                         f"{have.country}; edit its entry instead of adding it again")
    _rewrite(path, registry, country, None, entry)
    return TrustRegistry.load(path).entry(entry.keyid)


def _rewrite(path: Path, registry: TrustRegistry, country: str, replace_kid: str | None,
             entry: TrustedKey) -> None:
    """Write ``registry`` with ``entry`` replacing ``replace_kid`` (or appended to country)."""
    mapping = registry.as_mapping()
    items = mapping.setdefault(country, [])
    if replace_kid is None:
        items.append(entry.as_entry())
    else:
        index = list(registry._listed[country]).index(replace_kid)
        items[index] = entry.as_entry()
    write_registry(path, mapping)
