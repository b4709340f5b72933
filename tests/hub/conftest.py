"""A hub under test: FastAPI TestClient, its store, a small catalogue and trusted keys.

Specs: two share indicators (T-ALPHA without strata, T-BETA by urbanicity) and one
distribution (T-TIME, 10 one-minute bins by urgency level), so every kind of cell and
stratum rule can be attacked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from emsbench import dsse
from emsbench.specs import IndicatorSpec, catalogue_sha256, load_specs
from emsbench.wire import (
    SUBMISSION_TYPE,
    WITHDRAWAL_TYPE,
    Cell,
    DataQuality,
    IndicatorResult,
    Period,
    Submission,
    Withdrawal,
)
from hub.api import create_app
from hub.config import HubConfig, PolicyConfig
from hub.store import Store
from hub.trust import write_registry

SHARE_YAML = """\
id: {id}
version: {version}
title: Test indicator {id}
description: Share of missions driven with lights and sirens (test spec).
unit: percent
direction: descriptive
type: share
population: "true"
numerator: "lights_sirens"
strata: {strata}
tests:
  - name: one mission
    rows: [{{lights_sirens: true, urbanicity: urban}}]
    expect: [{expect}]
"""

TIME_YAML = """\
id: T-TIME
version: 1.0.0
title: Test time
description: Minutes from call to scene, binned by the minute (test spec).
unit: minutes
direction: lower_is_better
type: distribution
population: "arrived_scene IS NOT NULL"
measure: "date_diff('second', call_received, arrived_scene) / 60.0"
bins: {start: 0, width: 1, count: 10}
quantile: 0.5
strata: [urgency_level]
tests:
  - name: one
    rows:
      - {urgency_level: U1, call_received: "2025-01-01 10:00:00",
         arrived_scene: "2025-01-01 10:03:30"}
    expect: [{stratum: {urgency_level: U1}, bins: {3: 1}}]
"""

YEAR = 2024
CREATED = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


def write_specs(spec_dir: Path) -> None:
    spec_dir.mkdir(exist_ok=True)
    (spec_dir / "T-ALPHA.yaml").write_text(SHARE_YAML.format(
        id="T-ALPHA", version="1.0.0", strata="[]",
        expect="{numerator: 1, denominator: 1}"))
    (spec_dir / "T-BETA.yaml").write_text(SHARE_YAML.format(
        id="T-BETA", version="1.0.0", strata="[urbanicity]",
        expect="{stratum: {urbanicity: urban}, numerator: 1, denominator: 1}"))
    (spec_dir / "T-TIME.yaml").write_text(TIME_YAML)


class Hub:
    """A hub under test with the keys of two trusted countries (NO, SE)."""

    def __init__(self, tmp: Path, max_body_bytes: int = 5_000_000, **policy: Any) -> None:
        self.tmp = tmp
        spec_dir = tmp / "specs"
        write_specs(spec_dir)
        self.specs: list[IndicatorSpec] = load_specs(spec_dir)
        self.catalogue = catalogue_sha256(self.specs)
        self.keys = {"NO": dsse.generate_key(), "SE": dsse.generate_key()}
        write_registry(tmp / "trust.toml",
                       {c: [dsse.public_key_b64(k.public_key)] for c, k in self.keys.items()})
        self.config = HubConfig(database=tmp / "hub.duckdb", trust_registry=tmp / "trust.toml",
                                specs=spec_dir, max_body_bytes=max_body_bytes,
                                policy=PolicyConfig(**policy))
        self.app = create_app(self.config)
        self.client = TestClient(self.app)
        self.store: Store = self.app.state.hub.store
        self.hub_key: dsse.KeyPair = self.app.state.hub.key

    def results(self) -> list[IndicatorResult]:
        by_id = {s.id: s for s in self.specs}

        def result(sid: str, cells: list[Cell]) -> IndicatorResult:
            s = by_id[sid]
            return IndicatorResult(spec_id=s.id, spec_version=s.version, spec_sha256=s.sha256,
                                   type=s.type, strata=list(s.strata), cells=cells)

        return [
            result("T-ALPHA", [Cell(numerator=40, denominator=100)]),
            result("T-BETA", [Cell(stratum={"urbanicity": "urban"}, numerator=30,
                                   denominator=60),
                              Cell(stratum={"urbanicity": "rural"}, suppressed=True)]),
            result("T-TIME", [Cell(stratum={"urgency_level": "U1"},
                                   bins=[(2, 2, 10), (3, 4, 25), (5, 10, 6)]),
                              Cell(stratum={"urgency_level": "U2"}, suppressed=True)]),
        ]

    def submission(self, country: str = "NO", sid: str = "NO-2024-0001", threshold: int = 5,
                   revision: int = 1, year: int = YEAR, **changes: Any) -> Submission:
        sub = Submission(
            submission_id=sid, country=country, period=Period(year=year),
            catalogue=self.catalogue, revision=revision, created_at=CREATED,
            software_version="0.1.0", model_version="1", disclosure_threshold=threshold,
            data_quality=DataQuality(rows_read=120, rows_accepted=100,
                                     rejected_by_reason={"missing:urgency_level": 20}),
            indicators=self.results())
        return sub.model_copy(update=changes)

    def withdrawal(self, country: str = "NO", sid: str = "NO-2024-w001", revision: int = 2,
                   year: int = YEAR) -> Withdrawal:
        return Withdrawal(submission_id=sid, country=country, period=Period(year=year),
                          catalogue=self.catalogue, revision=revision, created_at=CREATED,
                          reason="figures recalled for review")

    def envelope(self, doc: Submission | Withdrawal, signer: str | dsse.KeyPair = "NO"
                 ) -> dict[str, Any]:
        key = self.keys[signer] if isinstance(signer, str) else signer
        ptype = WITHDRAWAL_TYPE if isinstance(doc, Withdrawal) else SUBMISSION_TYPE
        return dsse.sign(doc.to_bytes(), key, payload_type=ptype)

    def post(self, body: dict[str, Any] | bytes, path: str = "/v1/submissions"
             ) -> httpx.Response:
        content = body if isinstance(body, bytes) else dsse.envelope_bytes(body)
        return self.client.post(path, content=content,
                                headers={"content-type": "application/json"})


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return Hub(tmp_path)
