"""The public web publication: ``emsbench hub publish`` writes a static site to a folder.

The site (``hub.site_pages``) has a landing page, a page per indicator and per country,
the open data (``hub.site_data``: CSV and JSON-stat 2.0 of the published figures only) and
a page of catalogue releases and provenance, in one or more languages. Pages need no
JavaScript and load nothing from another host; the hub serves the folder under
``/public/`` (``hub.api``), and any static web server or a ``file://`` URL shows it the
same.

Publishing is safe to repeat into the folder the hub serves: the whole site is written to
a staging folder inside it first, then each file is moved into place (one atomic rename
each, the landing pages last), and only then are the files of the previous publication that
are gone removed. The list of files written is kept in ``.emsbench-site.json``; a file in
the way that is not on that list (say, an ``index.html`` someone else put there) stops the
publication before anything is touched, and nothing outside the list is ever removed, so
the annual reports put in ``report/`` stay.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from hub.config import HubConfig
from hub.history import History, load_history
from hub.messages import LANGUAGES
from hub.site_data import Download, write_downloads
from hub.site_model import Figures, stamp
from hub.site_pages import SiteInput, find_reports, render_language

MANIFEST = ".emsbench-site.json"
_STAGING = ".publish-"


class SiteError(ValueError):
    """The site cannot be published into that folder."""


@dataclass(frozen=True)
class Published:
    out: Path
    pages: tuple[str, ...]  # relative to ``out``, posix style
    downloads: tuple[Download, ...]
    files: tuple[str, ...]  # every file written: pages, downloads, checksums
    seconds: float


def check_languages(langs: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(langs))
    unknown = [lang for lang in out if lang not in LANGUAGES]
    if not out or unknown:
        raise SiteError(f"languages must be some of {', '.join(LANGUAGES)}; got "
                        f"{', '.join(langs) or 'none'}")
    return out


def release_dates(folders: Sequence[Path]) -> dict[str, str]:
    """catalogue id → the date its release manifest gives, from each spec folder's
    ``releases/*.json`` (``emsbench specs release`` writes them); unreadable ones are
    skipped, as a date is only shown."""
    dates: dict[str, str] = {}
    for folder in folders:
        for path in sorted((folder / "releases").glob("*.json")):
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(manifest, dict) and isinstance(manifest.get("catalogue"), str):
                dates.setdefault(manifest["catalogue"], str(manifest.get("date") or ""))
    return dates


def publish(history: History, out_dir: Path | str, langs: Sequence[str] = LANGUAGES, *,
            dates: dict[str, str] | None = None, now: datetime | None = None) -> Published:
    """Write the site of ``history`` into ``out_dir`` (see the module docstring)."""
    started = time.monotonic()
    langs = check_languages(langs)
    if not history.years:
        skipped = "; ".join(f"{y}: {why}" for y, why in sorted(history.skipped.items()))
        raise ValueError("no year with published figures: nothing to publish"
                         + (f" ({skipped})" if skipped else ""))
    figs = Figures(history)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous = _previous_files(out)
    stage = Path(tempfile.mkdtemp(prefix=_STAGING, dir=out))
    try:
        downloads = tuple(write_downloads(history, stage))
        site = SiteInput(figs, langs, downloads,
                         {lang: find_reports(out, figs.years, lang) for lang in langs},
                         dates or {}, stamp(now or datetime.now(UTC)))
        pages: list[str] = []
        for lang in langs:
            for path, html in render_language(site, lang).items():
                target = stage / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(html, encoding="utf-8")
                pages.append(path)
        files = _files(stage)
        _install(stage, out, files, previous)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return Published(out, tuple(pages), downloads, tuple(files), time.monotonic() - started)


def publish_from_config(cfg: HubConfig, out_dir: Path | None = None,
                        langs: Sequence[str] = LANGUAGES) -> Published:
    """Publish every year the hub holds into ``out_dir``, by default the folder the hub
    serves under ``/public/`` (``[hub] public``)."""
    from emsbench.specs import default_spec_dir

    history = load_history(cfg)
    dates = release_dates([cfg.specs or default_spec_dir(), *cfg.earlier_specs])
    return publish(history, out_dir or cfg.public_dir, langs, dates=dates)


def _files(stage: Path) -> list[str]:
    """The staged files, relative and posix style, the landing pages last (so a reader
    never follows a new landing page's link to a page not yet in place)."""
    found = [p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()]
    return sorted(found, key=lambda f: (f.endswith("index.html"), f.count("/") == 0, f))


def _safe(entry: object, out: Path) -> str | None:
    """A previous manifest's entry if it names a file inside ``out`` (the manifest is in
    a served folder: never trust it to name what to delete)."""
    if not isinstance(entry, str) or not entry or "\\" in entry or "\x00" in entry:
        return None
    path = PurePosixPath(entry)
    if path.is_absolute() or ".." in path.parts or entry != path.as_posix():
        return None
    resolved = (out / entry).resolve()
    return entry if resolved.is_relative_to(out.resolve()) and resolved != out.resolve() \
        else None


def _previous_files(out: Path) -> set[str]:
    manifest = out / MANIFEST
    if not manifest.exists():
        return set()
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError) as exc:
        raise SiteError(f"{manifest} is not a publication list ({exc}); remove it only if "
                        f"{out} holds nothing but an earlier publication") from None
    return {e for e in (_safe(x, out) for x in listed if isinstance(listed, list)) if e}


def _install(stage: Path, out: Path, files: list[str], previous: set[str]) -> None:
    """Move the staged files into ``out``; then remove the previous publication's files
    that are gone, and the folders they leave empty."""
    in_the_way = [f for f in files if (out / f).exists() and f not in previous]
    if in_the_way:
        raise SiteError(f"{out / in_the_way[0]} (and {len(in_the_way) - 1} more) exist(s) "
                        "but were not written by hub publish; publish into another folder, "
                        "or move them away")
    # First claim the old and the new files, so that a publication cut short (a crash,
    # a full disk) leaves a list that lets the next one replace what this one moved.
    _write_manifest(stage, out, sorted(previous | set(files)))
    for f in files:
        target = out / f
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / f, target)
    for f in sorted(previous - set(files)):
        target = out / f
        if target.is_file() and not target.is_symlink():
            target.unlink()
        parent = target.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    _write_manifest(stage, out, files)


def _write_manifest(stage: Path, out: Path, files: list[str]) -> None:
    tmp = stage / MANIFEST
    tmp.write_text(json.dumps({"generator": "emsbench hub publish", "files": files},
                              indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
