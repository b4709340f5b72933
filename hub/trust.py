"""Trust registry: which Ed25519 public keys may sign for which country, and when.

The registry is a TOML file kept by the hub operator::

    [countries.NO]
    keys = [
        # base64 of the raw 32-byte Ed25519 public key: trusted with no time limit
        "<b64>",
        # inline tables (one line each): a validity window, a revoked key
        { key = "<b64>", valid_from = 2025-01-01T00:00:00Z, valid_until = 2027-01-01T00:00:00Z },
        { key = "<b64>", revoked_at = 2026-03-01T00:00:00Z, note = "laptop stolen" },
    ]

    [countries.SE]
    keys = ["..."]

Each entry is either a plain base64 string (trusted with no time limit, the original
format) or an inline table with ``key`` and any of ``valid_from``, ``valid_until``,
``revoked_at`` (TOML offset datetimes: ``Z`` or ``+HH:MM`` is required so every hub reads
the same instant) and ``note`` (free text for the operator; never sent to clients). Unknown
fields, local datetimes and ``valid_until <= valid_from`` are refused rather than guessed.

A key belongs to exactly one country: the hub derives the sender's country from the key
that verified, and refuses payloads that claim a different one, so one key trusted for two
countries would let a node speak for both.

Life cycle, as the hub applies it (``TrustRegistry.check_valid(keyid, at)``, with ``at`` the
time the hub received the submission):

* a key may sign from ``valid_from`` (inclusive) until ``valid_until`` (exclusive);
* rotation with overlap: add the new key with ``valid_from`` = now and give the old one a
  ``valid_until`` some days later; both are valid in the overlap, so the node can switch at
  any moment in it, and afterwards only the new key is;
* revocation: a key is refused for requests at or after ``revoked_at``. Submissions it signed
  before stay verifiable, so revoked and expired keys are kept in the file and ``keys()``
  still returns them: the hub verifies the signature first, then asks ``check_valid``
  whether that key may sign at that time, and can flag stored submissions received after
  ``revoked_at`` (``TrustedKey.refusal``).

``ReloadingTrust`` re-reads the file when it changes (one ``stat`` per call), so the hub picks
up a rotated or revoked key without a restart; a broken edit keeps the last good registry
and is reported in ``last_error``. Writing the file (``write_registry``, ``add_key``,
``revoke_key``) lives in ``hub.trust_file``; it replaces the file atomically, so a hub
reloading at that moment sees either the old or the new file, never half of one.
"""

from __future__ import annotations

import binascii
import logging
import os
import re
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from emsbench import dsse

COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")  # same rule as Submission.country

# The fields an inline-table entry may carry; anything else is a typo ("valid_till") that
# would otherwise silently leave a key valid forever.
ENTRY_FIELDS = ("key", "valid_from", "valid_until", "revoked_at", "note")
TIME_FIELDS = ("valid_from", "valid_until", "revoked_at")

# One entry of ``countries.XX.keys`` as ``from_mapping``/``write_registry`` take it: a base64
# string or a table {"key": b64, "valid_from": datetime, ...}.
KeyEntry = str | Mapping[str, object]

log = logging.getLogger(__name__)


class TrustError(ValueError):
    """The trust registry file is missing or invalid."""


class KeyRefused(Exception):
    """A key that verified the signature may not sign at the time of the request.

    ``code`` is machine-readable (``untrusted_key``, ``revoked_key``, ``expired_key``,
    ``key_not_yet_valid``) so the hub can map it to an HTTP status; ``message`` (also
    ``str(exc)``) says which key, which country, which time and what to do.
    """

    def __init__(self, code: str, message: str, keyid: str = "",
                 country: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.keyid = keyid
        self.country = country


def format_time(dt: datetime) -> str:
    # Messages in UTC so logs from hubs and nodes in different zones compare at a glance.
    return dt.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class TrustedKey:
    """One registry entry: a public key, its country and its validity window."""

    keyid: str
    country: str
    public_key: Ed25519PublicKey
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    note: str = ""

    @property
    def public_key_b64(self) -> str:
        return dsse.public_key_b64(self.public_key)

    def refusal(self, at: datetime) -> KeyRefused | None:
        """Why this key may not sign at ``at`` (aware datetime), or None when it may."""
        if at.tzinfo is None or at.utcoffset() is None:
            # Comparing with the aware registry times would raise TypeError only when a
            # window is set; refuse naive times always so the bug shows on every key.
            raise ValueError("check time must be timezone-aware (e.g. datetime.now(UTC))")
        # The note is deliberately left out: it is for the operator and the refusal goes
        # back to whoever holds the key, which after a theft is not the node.
        what = f"key {self.keyid[:16]}… of {self.country}"
        todo = (f"sign with {self.country}'s current key; if the node has none, ask the hub "
                "operator to add a new key")
        if self.revoked_at is not None and at >= self.revoked_at:
            return KeyRefused("revoked_key", f"{what} was revoked at "
                              f"{format_time(self.revoked_at)} and may not sign requests "
                              f"from then on; {todo}",
                              self.keyid, self.country)
        if self.valid_until is not None and at >= self.valid_until:
            return KeyRefused("expired_key", f"{what} expired at {format_time(self.valid_until)}; "
                              f"{todo}", self.keyid, self.country)
        if self.valid_from is not None and at < self.valid_from:
            return KeyRefused("key_not_yet_valid", f"{what} is valid only from "
                              f"{format_time(self.valid_from)}; until then {todo}",
                              self.keyid, self.country)
        return None

    def as_entry(self) -> KeyEntry:
        """The entry as ``write_registry`` takes it: plain base64 when it has no window."""
        if (self.valid_from is None and self.valid_until is None and self.revoked_at is None
                and not self.note):
            return self.public_key_b64
        entry: dict[str, object] = {"key": self.public_key_b64}
        for name in TIME_FIELDS:
            if getattr(self, name) is not None:
                entry[name] = getattr(self, name)
        if self.note:
            entry["note"] = self.note
        return entry


@dataclass(frozen=True)
class TrustRegistry:
    """Trusted keys by key id, each tied to one country and a validity window."""

    _entries: dict[str, TrustedKey] = field(default_factory=dict)
    # Key ids per country in file order, including countries with no keys, so a rewrite
    # (add_key, revoke_key) reproduces the file's content.
    _listed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, countries: Mapping[str, Sequence[KeyEntry]],
                     source: str = "trust registry") -> TrustRegistry:
        """Build a registry from ``{country: [b64 or {"key": b64, ...}, ...]}``.

        Raises TrustError naming ``source`` and the bad entry.
        """
        entries: dict[str, TrustedKey] = {}
        listed: dict[str, tuple[str, ...]] = {}
        for country, encoded in countries.items():
            # fullmatch: with match, "$" would also accept "NO\n" as a country.
            if not isinstance(country, str) or not COUNTRY_PATTERN.fullmatch(country):
                raise TrustError(f"{source}: country {country!r} must be two capital letters")
            if isinstance(encoded, str) or not isinstance(encoded, Sequence):
                raise TrustError(f"{source}: countries.{country}.keys must be a list of "
                                 "base64 strings or inline tables")
            ids: list[str] = []
            for i, raw in enumerate(encoded):
                where = f"{source}: countries.{country}.keys[{i}]"
                entry = _parse_entry(raw, country, where)
                kid = entry.keyid
                old = entries.get(kid)
                if old is not None and old.country != country:
                    raise TrustError(f"{where}: key {kid[:16]}… is listed for both "
                                     f"{old.country} and {country}; a key may sign for one "
                                     "country only")
                if old is not None and old != entry:
                    # Two windows for one key: which one applies would depend on file order.
                    raise TrustError(f"{where}: key {kid[:16]}… is listed twice for "
                                     f"{country} with different validity; list it once")
                if old is None:
                    entries[kid] = entry
                    ids.append(kid)
            listed[country] = tuple(ids)
        return cls(entries, listed)

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
        mapping: dict[str, Sequence[KeyEntry]] = {}
        for country, table in countries.items():
            if not isinstance(table, dict) or set(table) != {"keys"}:
                raise TrustError(f"{path}: [countries.{country}] must hold exactly one "
                                 "key, 'keys' (a list of base64 public keys or inline tables)")
            mapping[country] = table["keys"]
        return cls.from_mapping(mapping, source=str(path))

    def keys(self) -> dict[str, Ed25519PublicKey]:
        """Key id → public key, the form ``dsse.verify`` takes (a copy, safe to mutate).

        All keys, including expired and revoked ones: the signature is checked first, then
        ``check_valid`` decides whether that key may sign at that time.
        """
        return dict(self.public_keys)

    @cached_property
    def public_keys(self) -> Mapping[str, Ed25519PublicKey]:
        """``keys()`` made once per registry, read-only: what intake verifies against on
        every request (a copy per request cost as much as the registry is long)."""
        return MappingProxyType({kid: e.public_key for kid, e in self._entries.items()})

    def country_of(self, keyid: str) -> str:
        """Country the key signs for; KeyError when the key is not trusted."""
        return self.entry(keyid).country

    def entry(self, keyid: str) -> TrustedKey:
        """The registry entry of a key; KeyError when the key is not in the registry."""
        try:
            return self._entries[keyid]
        except KeyError:
            raise KeyError(f"key {keyid!r} is not in the trust registry") from None

    def entries(self) -> list[TrustedKey]:
        """Every entry, in file order."""
        return list(self._entries.values())

    def check_valid(self, keyid: str, at: datetime) -> TrustedKey:
        """The entry of ``keyid`` if that key may sign at ``at``; raise KeyRefused if not."""
        entry = self._entries.get(keyid)
        if entry is None:
            raise KeyRefused("untrusted_key", f"key {keyid[:16]}… is not in the trust "
                             "registry; sign with your country's current key, or ask the hub "
                             "operator to add your public key", keyid)
        refused = entry.refusal(at)
        if refused is not None:
            raise refused
        return entry

    def may_sign(self, keyid: str, at: datetime) -> bool:
        """Whether ``keyid`` is in the registry and may sign at ``at``."""
        entry = self._entries.get(keyid)
        return entry is not None and entry.refusal(at) is None

    def countries(self) -> list[str]:
        return sorted({e.country for e in self._entries.values()})

    def as_mapping(self) -> dict[str, list[KeyEntry]]:
        """``{country: [entry, ...]}`` as ``write_registry`` takes it, in file order."""
        return {country: [self._entries[kid].as_entry() for kid in ids]
                for country, ids in self._listed.items()}

    def __len__(self) -> int:
        return len(self._entries)


def _decode_key(text: object, where: str) -> Ed25519PublicKey:
    if not isinstance(text, str):
        raise TrustError(f"{where}: expected a base64 string, got {type(text).__name__}")
    try:
        return dsse.public_key_from_b64(text.strip())
    except (binascii.Error, ValueError) as exc:
        # binascii.Error for bad base64, ValueError from cryptography for a wrong length.
        raise TrustError(f"{where}: not a base64 raw 32-byte Ed25519 public key "
                         f"({exc})") from exc


def _parse_time(table: Mapping[str, object], name: str, where: str) -> datetime | None:
    value = table.get(name)
    if value is None:  # absent (TOML has no null; None only comes from Python callers)
        return None
    # datetime before date: a TOML date (2025-01-01) is a date, not a datetime, and has no
    # time of day, so it is refused like any other non-datetime.
    if not isinstance(value, datetime):
        raise TrustError(f"{where}.{name}: expected an unquoted TOML datetime with offset, "
                         f"e.g. 2025-01-01T00:00:00Z, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise TrustError(f"{where}.{name}: {value.isoformat()} has no UTC offset; add Z or "
                         "+HH:MM so every hub reads the same instant")
    return value


def _parse_entry(raw: object, country: str, where: str) -> TrustedKey:
    if isinstance(raw, str):
        key = _decode_key(raw, where)
        return TrustedKey(dsse.key_id(key), country, key)
    if not isinstance(raw, Mapping):
        raise TrustError(f"{where}: expected a base64 string or an inline table "
                         f'{{ key = "<base64>", ... }}, got {type(raw).__name__}')
    unknown = sorted(str(k) for k in raw if k not in ENTRY_FIELDS)
    if unknown:
        raise TrustError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(ENTRY_FIELDS)}")
    if "key" not in raw:
        raise TrustError(f"{where}: the table has no 'key' (the base64 public key)")
    key = _decode_key(raw["key"], f"{where}.key")
    valid_from, valid_until, revoked_at = (_parse_time(raw, name, where)
                                           for name in TIME_FIELDS)
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise TrustError(f"{where}: valid_until {format_time(valid_until)} must be after "
                         f"valid_from {format_time(valid_from)}")
    note = raw.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise TrustError(f"{where}.note: expected a string, got {type(note).__name__}")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: cannot be written back as TOML
        raise TrustError(f"{where}.note: not valid Unicode text ({exc})") from exc
    return TrustedKey(dsse.key_id(key), country, key, valid_from, valid_until, revoked_at,
                      note)


FileStamp = tuple[int, int, int]


class ReloadingTrust:
    """A trust registry that follows its file, so key changes need no hub restart.

    ``current()`` costs one ``stat``; the file is re-read only when its
    ``(st_mtime_ns, st_size, st_ino)`` changed (``os.replace`` gives a new inode, an
    in-place edit a new mtime). A file that became invalid or disappeared is reported in
    ``last_error`` while the last good registry stays in use: a typo must not lock every
    node out, nor silently trust nothing.
    """

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        # Stat before reading: if the file changes while it is read, the next call sees a
        # new stamp and reads again, instead of keeping a half-old view forever.
        stamp = self._stamp()
        self._registry = TrustRegistry.load(self._path)
        self._seen = stamp
        self._last_error: str | None = None
        self._reloads = 0

    @property
    def path(self) -> Path:
        return self._path

    @property
    def last_error(self) -> str | None:
        """Why the newest version of the file is not in use; None when it is."""
        with self._lock:
            return self._last_error

    @property
    def reloads(self) -> int:
        """How many times a changed file was loaded successfully."""
        with self._lock:
            return self._reloads

    def _stamp(self) -> FileStamp | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None  # load() reports the reason; None differs from every real stamp
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> TrustRegistry:
        """The registry as of the file's latest valid version."""
        # One lock for check and reload: the stamp and the registry change together, and
        # concurrent requests after a change reload once, not once each.
        with self._lock:
            stamp = self._stamp()
            if stamp == self._seen:
                return self._registry
            # Remember the stamp even when loading fails, so a broken file is parsed (and
            # logged) once, not on every request; the next edit changes the stamp again.
            self._seen = stamp
            try:
                registry = TrustRegistry.load(self._path)
            except TrustError as exc:
                self._last_error = str(exc)
                log.warning("trust registry %s not reloaded, keeping the last good one: %s",
                            self._path, exc)
                return self._registry
            self._registry = registry
            self._last_error = None
            self._reloads += 1
            log.info("trust registry %s reloaded: %d keys", self._path, len(registry))
            return registry
