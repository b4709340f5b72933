"""The catalogue releases a hub accepts: the current one and the earlier ones still in use.

Nodes upgrade on their own schedule, so a hub that knows a newer catalogue release keeps
accepting submissions computed with the releases before it (no lock-step upgrades). Each
release is a spec folder (``[hub] specs`` is the current one, ``[hub] earlier_specs`` the
earlier ones), identified by its catalogue id (``specs.catalogue_sha256``, which every
submission carries) and named by the manifest in the folder's ``releases/`` that records
that id (``emsbench specs release`` writes it).

A spec is the pair (id, fingerprint). Loading refuses two folders that give one id and
version two different fingerprints: a version is a promise of one meaning, and the merge
relies on it to publish each figure under exactly one definition (``hub.merge`` pools only
results of the same fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emsbench.specs import RELEASES_DIR, IndicatorSpec, catalogue_sha256, load_specs


@dataclass(frozen=True)
class Catalogue:
    """One catalogue release: its id, its name and its specs."""

    id: str
    name: str
    specs: tuple[IndicatorSpec, ...]

    @property
    def label(self) -> str:
        """``2026.1 (661ab3055652…)``: the release name and the start of its id."""
        return f"{self.name} ({self.id[:12]}…)"


def release_name(spec_dir: Path, catalogue_id: str) -> str:
    """The name of the release manifest in ``spec_dir/releases`` that records
    ``catalogue_id``; ``unreleased`` when none does (a working copy between releases)."""
    releases = spec_dir / RELEASES_DIR
    for path in sorted(releases.glob("*.json")) if releases.is_dir() else []:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # spec validation reports unreadable manifests; a name is optional
        if isinstance(manifest, dict) and manifest.get("catalogue") == catalogue_id:
            return str(manifest.get("name") or path.stem)
    return "unreleased"


class Catalogues:
    """The releases a hub accepts, newest (current) first."""

    def __init__(self, releases: Sequence[Catalogue]) -> None:
        if not releases:
            raise ValueError("a hub needs at least one catalogue release")
        self.releases = tuple(releases)
        self._by_id = {c.id: c for c in self.releases}
        if len(self._by_id) != len(self.releases):
            raise ValueError("the same catalogue release is configured twice")
        seen: dict[tuple[str, str], tuple[str, Catalogue]] = {}
        for c in self.releases:
            for s in c.specs:
                first = seen.setdefault((s.id, s.version), (s.sha256, c))
                if first[0] != s.sha256:
                    raise ValueError(
                        f"{s.id} version {s.version} has one definition in release "
                        f"{first[1].label} and another in {c.label}; a changed spec needs a "
                        "new version before both releases can be accepted")

    @classmethod
    def of(cls, specs: Iterable[IndicatorSpec], name: str = "unreleased") -> Catalogues:
        """A single release made of ``specs`` (tests, and hubs with one catalogue)."""
        specs = tuple(specs)
        return cls([Catalogue(catalogue_sha256(specs), name, specs)])

    @classmethod
    def load(cls, current: Path | None, earlier: Iterable[Path] = ()) -> Catalogues:
        """The current spec folder (None: the packaged catalogue) and the earlier ones;
        raise ``SpecError`` for an invalid spec and ``ValueError`` for a conflict."""
        from emsbench.specs import default_spec_dir

        out = []
        for folder in (current or default_spec_dir(), *earlier):
            specs = tuple(load_specs(folder))
            cid = catalogue_sha256(specs)
            out.append(Catalogue(cid, release_name(folder, cid), specs))
        return cls(out)

    @property
    def current(self) -> Catalogue:
        return self.releases[0]

    def get(self, catalogue_id: str) -> Catalogue | None:
        return self._by_id.get(catalogue_id)

    def name_of(self, catalogue_id: str) -> str:
        """The release name of a catalogue id, or the start of the id if it is unknown."""
        c = self._by_id.get(catalogue_id)
        return c.name if c is not None else f"unknown ({catalogue_id[:12]}…)"

    def describe(self) -> str:
        return ", ".join(c.label for c in self.releases)

    def specs(self) -> list[IndicatorSpec]:
        """Every distinct spec (id, fingerprint), in the current release's order, each id's
        newest version first; ids only earlier releases have come last."""
        out: dict[tuple[str, str], IndicatorSpec] = {}
        order: dict[str, int] = {}
        for c in self.releases:
            for s in c.specs:
                order.setdefault(s.id, len(order))
                out.setdefault((s.id, s.sha256), s)
        return sorted(out.values(), key=lambda s: order[s.id])

    def releases_of(self, spec: IndicatorSpec) -> list[str]:
        """The names of the releases that hold exactly this spec."""
        return [c.name for c in self.releases
                if any(s.sha256 == spec.sha256 for s in c.specs)]
