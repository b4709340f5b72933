"""A hub under test: FastAPI TestClient, its store, a small catalogue and trusted keys.

Specs (``tests/hub/catalogue/``): two share indicators (T-ALPHA without strata, T-BETA by
urbanicity) and one distribution (T-TIME, 10 one-minute bins by urgency level), so every
kind of cell and stratum rule can be attacked.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from emsbench import dsse
from emsbench.specs import IndicatorSpec, catalogue_sha256, load_specs
from emsbench.wire import (
    SUBMISSION_TYPE,
    WITHDRAWAL_TYPE,
    DataQuality,
    IndicatorResult,
    Period,
    Submission,
    Withdrawal,
)
from hub.api import create_app
from hub.catalogues import Catalogues
from hub.config import HubConfig, PolicyConfig
from hub.store import Store
from hub.trust_file import write_registry

CATALOGUE = Path(__file__).parent / "catalogue"  # also used by bench/hub_bench.py

YEAR = 2024
CREATED = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


def write_specs(spec_dir: Path) -> None:
    """Copy the test catalogue (T-ALPHA, T-BETA, T-TIME) into ``spec_dir``."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    for path in CATALOGUE.glob("*.yaml"):
        shutil.copyfile(path, spec_dir / path.name)


def load_hub_bench() -> ModuleType:
    """``bench/hub_bench.py``, which holds the load helpers the crash and contention tests
    share with the benchmark (bench is not a package; pytest runs with importlib mode)."""
    if "hub_bench" in sys.modules:
        return sys.modules["hub_bench"]
    path = Path(__file__).resolve().parents[2] / "bench" / "hub_bench.py"
    spec = importlib.util.spec_from_file_location("hub_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hub_bench"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def hb() -> ModuleType:
    return load_hub_bench()


class Hub:
    """A hub under test with the keys of two trusted countries (NO, SE)."""

    def __init__(self, tmp: Path, max_body_bytes: int = 5_000_000, specs: Path | None = None,
                 earlier_specs: Sequence[Path] = (), **policy: Any) -> None:
        self.tmp = tmp
        spec_dir = specs or tmp / "specs"
        if specs is None:
            write_specs(spec_dir)
        self.specs: list[IndicatorSpec] = load_specs(spec_dir)
        self.catalogue = catalogue_sha256(self.specs)
        self.keys = {"NO": dsse.generate_key(), "SE": dsse.generate_key()}
        write_registry(tmp / "trust.toml",
                       {c: [dsse.public_key_b64(k.public_key)] for c, k in self.keys.items()})
        self.config = HubConfig(database=tmp / "hub.duckdb", trust_registry=tmp / "trust.toml",
                                specs=spec_dir, earlier_specs=list(earlier_specs),
                                max_body_bytes=max_body_bytes,
                                policy=PolicyConfig(**policy))
        self.app = create_app(self.config)
        self.client = TestClient(self.app)
        self.store: Store = self.app.state.hub.store
        self.hub_key: dsse.KeyPair = self.app.state.hub.key
        self.catalogues: Catalogues = self.app.state.hub.catalogues

    def results(self) -> list[IndicatorResult]:
        return list(load_hub_bench().sample_results(self.specs))

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
