"""Serving the published site read-only under the hub's ``/public/`` (``hub.api``).

Starlette's ``StaticFiles`` already refuses paths that leave the folder (``..``, encoded or
not, absolute paths and symlinks out of it) and answers only GET and HEAD. On top of that
this serves no dot-file or dot-folder (the publication list ``.emsbench-site.json`` and a
publication being staged), answers 404 until the first ``hub publish`` instead of refusing
to start, and sends every file with headers that forbid scripts, framing and other hosts,
which the site never needs.
"""

from __future__ import annotations

import os
from pathlib import PurePath

from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class PublicFiles(StaticFiles):
    """The site's folder as static files (see the module docstring)."""

    async def check_config(self) -> None:
        if self.directory is not None and not os.path.isdir(self.directory):
            return  # not published yet: every request is a 404 until it is
        await super().check_config()

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if any(part.startswith(".") for part in PurePath(path).parts):
            return "", None
        return super().lookup_path(path)

    def file_response(self, full_path: PathLike, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response
