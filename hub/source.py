"""Where the hub's CLI reads stored records: the database itself, or the running hub.

DuckDB lets one process hold a database file for writing, and the running hub holds it for
its lifetime. So ``emsbench hub report`` (export, verify, audit verify) first tries the file
read-only; when a running hub holds it, the CLI reads through that hub's ``/v1/records`` and
``/v1/audit`` endpoints with the token the hub wrote beside its database. Either way the CLI
re-verifies every record itself (``hub.ledger``): it trusts the bytes, not the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from hub.catalogues import Catalogues
from hub.config import HubConfig
from hub.ledger import PeriodView, period_view
from hub.store import DatabaseBusy, Record, Store
from hub.trust import TrustRegistry


class SourceError(RuntimeError):
    """Neither the database nor a running hub could be read."""


class RecordSource(Protocol):
    def records(self, year: int | None = None) -> list[Record]: ...

    def audit_entries(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@dataclass
class HubClient:
    """Reads a running hub's records and audit log over its API."""

    base_url: str
    token: str
    timeout: float = 60.0

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            r = httpx.get(f"{self.base_url}{path}", params=params, timeout=self.timeout,
                          headers={"authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as exc:
            raise SourceError(f"the database is held by a running hub, but the hub at "
                              f"{self.base_url} does not answer: {exc}") from exc
        if r.status_code != 200:
            raise SourceError(f"the hub at {self.base_url} answered {r.status_code}: "
                              f"{r.text[:300]}")
        data: dict[str, Any] = r.json()
        return data

    def records(self, year: int | None = None) -> list[Record]:
        params = {"year": year} if year is not None else None
        return [Record.from_json(r) for r in self._get("/v1/records", params)["records"]]

    def audit_entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self._get("/v1/audit")["entries"]
        return entries

    def close(self) -> None:
        pass


def open_source(cfg: HubConfig) -> RecordSource:
    """The database read-only if no hub holds it, else the running hub."""
    if not cfg.database.exists():
        raise SourceError(f"no hub database at {cfg.database}: start the hub and run the "
                          "nodes first")
    try:
        return Store(cfg.database, read_only=True)
    except DatabaseBusy:
        try:
            token = cfg.token_path.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise SourceError(f"{cfg.database} is held by a running hub, and its token "
                              f"{cfg.token_path} cannot be read ({exc.strerror}); run this "
                              "command as the hub's user") from exc
        # A hub listening on every interface is reached on loopback from its own machine.
        host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
        return HubClient(f"http://{host}:{cfg.port}", token)


def read_records(cfg: HubConfig, year: int | None = None) -> list[Record]:
    """The stored revisions (of ``year``, or all) from the database or the running hub."""
    source = open_source(cfg)
    try:
        return source.records(year)
    finally:
        source.close()


def load_period(cfg: HubConfig, year: int) -> tuple[PeriodView, Catalogues]:
    """The standing revisions of ``year``, re-verified, and the catalogue releases they were
    judged by."""
    catalogues = cfg.catalogues()
    trust = TrustRegistry.load(cfg.trust_registry)
    records = read_records(cfg, year)
    return period_view(records, year, trust, catalogues, cfg.policy.policy()), catalogues
