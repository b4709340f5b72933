"""Signed catalogue releases: which spec versions a federation approved, and by whom.

A release manifest lists every spec of a catalogue by id, version and fingerprint (the
spec's content hash, ``IndicatorSpec.sha256``), with the catalogue id that submissions
carry (``specs.catalogue_sha256``). Working-group approvers sign the manifest's exact bytes
in one DSSE envelope, each adding their own signature, as TUF does for its roles: a
release is valid only with at least ``threshold`` valid signatures from distinct approver
keys. Nodes run only a valid release whose fingerprints match the specs on disk, so a spec
edited after signing, or a release signed by too few approvers, is refused before any data
is read.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emsbench import dsse
from emsbench.specs import IndicatorSpec, catalogue_sha256

RELEASE_TYPE = "application/vnd.emsbench.catalogue-release+json"
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ReleaseError(ValueError):
    """A release manifest, its signatures or the approvers file cannot be used."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ReleasedSpec(_Strict):
    id: str
    version: str
    fingerprint: Sha256


class CatalogueRelease(_Strict):
    """The manifest the approvers sign."""

    release_version: Literal["1"] = "1"
    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    date: date
    catalogue: Sha256
    specs: list[ReleasedSpec] = Field(min_length=1)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def build_release(specs: Iterable[IndicatorSpec], name: str, on: date) -> CatalogueRelease:
    specs = sorted(specs, key=lambda s: s.id)
    return CatalogueRelease(
        name=name, date=on, catalogue=catalogue_sha256(specs),
        specs=[ReleasedSpec(id=s.id, version=s.version, fingerprint=s.sha256) for s in specs])


@dataclass(frozen=True)
class Approvers:
    """The working-group keys that may approve a release, and how many must."""

    threshold: int
    keys: dict[str, Ed25519PublicKey]  # key id → key
    names: dict[str, str]  # key id → approver name

    @classmethod
    def load(cls, path: Path) -> Approvers:
        """``threshold = 2`` and ``[[approver]] name = "…" key = "<base64>"`` tables."""
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ReleaseError(f"cannot read the approvers file {path}: {exc}") from exc
        entries = doc.get("approver", [])
        threshold = doc.get("threshold")
        if not isinstance(entries, list) or not isinstance(threshold, int):
            raise ReleaseError(f"{path}: needs 'threshold = N' and [[approver]] tables")
        keys: dict[str, Ed25519PublicKey] = {}
        names: dict[str, str] = {}
        for i, entry in enumerate(entries):
            try:
                key = dsse.public_key_from_b64(str(entry["key"]).strip())
            except (KeyError, TypeError, ValueError) as exc:
                raise ReleaseError(f"{path}: approver {i}: a base64 Ed25519 'key' is "
                                   f"required ({exc})") from exc
            keys[dsse.key_id(key)] = key
            names[dsse.key_id(key)] = str(entry.get("name", f"approver {i}"))
        if not 1 <= threshold <= len(keys):
            raise ReleaseError(f"{path}: threshold {threshold} must be between 1 and the "
                               f"{len(keys)} distinct approver key(s)")
        return cls(threshold, keys, names)


def sign_release(envelope_or_release: dict[str, Any] | CatalogueRelease,
                 key: dsse.KeyPair) -> dict[str, Any]:
    """Start the signed release (from a manifest) or add one approver's signature to it."""
    if isinstance(envelope_or_release, CatalogueRelease):
        return dsse.sign(envelope_or_release.to_bytes(), key, payload_type=RELEASE_TYPE)
    return dsse.add_signature(envelope_or_release, key, payload_type=RELEASE_TYPE)


def verify_release(envelope: Any, approvers: Approvers) -> tuple[CatalogueRelease, list[str]]:
    """The release and the names of the approvers whose signatures verify; ReleaseError
    when fewer than the threshold of distinct approvers signed."""
    try:
        payload, signers = dsse.verify_all(envelope, approvers.keys, payload_type=RELEASE_TYPE)
    except dsse.SignatureError as exc:
        raise ReleaseError(f"the release envelope is not valid: {exc}") from exc
    if len(signers) < approvers.threshold:
        raise ReleaseError(f"the release is signed by {len(signers)} approver(s) "
                           f"({', '.join(sorted(approvers.names[k] for k in signers)) or 'none'})"
                           f"; {approvers.threshold} are required")
    try:
        release = CatalogueRelease.model_validate_json(payload)
    except ValidationError as exc:
        raise ReleaseError(f"the signed manifest is not a catalogue release: {exc}") from exc
    return release, sorted(approvers.names[k] for k in signers)


def mismatches(release: CatalogueRelease, specs: Iterable[IndicatorSpec]) -> list[str]:
    """How ``specs`` differ from what the release approved (empty: they are the release)."""
    have = {s.id: s for s in specs}
    approved = {r.id: r for r in release.specs}
    out = [f"{i}: not in release {release.name}" for i in sorted(set(have) - set(approved))]
    out += [f"{i}: approved in release {release.name} but missing here"
            for i in sorted(set(approved) - set(have))]
    for i in sorted(set(have) & set(approved)):
        s, r = have[i], approved[i]
        if (s.version, s.sha256) != (r.version, r.fingerprint):
            out.append(f"{i}: version {s.version} (fingerprint {s.sha256[:12]}…) differs from "
                       f"the approved {r.version} ({r.fingerprint[:12]}…): changed after "
                       "signing")
    return out


def check_release(specs: list[IndicatorSpec], release_file: Path, approvers_file: Path
                  ) -> tuple[CatalogueRelease, list[str]]:
    """Refuse (ReleaseError) unless ``release_file`` is a release signed by enough of the
    approvers in ``approvers_file`` and ``specs`` are exactly what it approved; return the
    release and the names of the approvers who signed it."""
    try:
        envelope = json.loads(release_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read the catalogue release {release_file}: {exc}") from exc
    release, names = verify_release(envelope, Approvers.load(approvers_file))
    problems = mismatches(release, specs)
    if problems:
        raise ReleaseError(f"the specs differ from release {release.name} "
                           f"({release_file}): " + "; ".join(problems))
    return release, names
