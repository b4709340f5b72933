"""Node test fixtures: a small fake hub on loopback, node folders, computed results.

The fake hub speaks the hub's HTTP contract (``POST /v1/submissions`` and
``/v1/withdrawals``, signed receipts, 200 for an identical resend, 409 ``stale_revision``,
the ``{"error": ...}`` body) and nothing more, so the node is tested against the contract
and not against the real hub's implementation. Tests queue canned answers (``script``) to
play an overloaded or broken hub, or swap its signing key or receipt fields to play a
forged one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from emsbench import dsse
from emsbench.kinds import Context
from emsbench.reference import population_by
from emsbench.specs import IndicatorSpec, load_specs
from emsbench.wire import PAYLOAD_MODELS, RECEIPT_TYPE, IndicatorResult, Receipt, kind_of
from node.config import NodeConfig, write_node_config
from node.ingest import IngestReport, open_missions
from node.keys import keygen
from node.submission import compute_all
from node.synth.generator import generate

YEAR = 2025
ENDPOINT_KIND = {"/v1/submissions": "submission", "/v1/withdrawals": "withdrawal"}


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str, **headers: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}}, headers)


class FakeHub:
    """The hub's contract, in memory. ``posts`` records every request (path, body)."""

    def __init__(self) -> None:
        self.key = dsse.generate_key()  # the key whose .pub the node is given
        self.signing_key = self.key  # what receipts are actually signed with
        self.script: list[Answer] = []  # answered first, in order, before the contract
        self.posts: list[tuple[str, bytes]] = []
        self.post_times: list[float] = []
        self.answers: dict[str, dict[str, Any]] = {}
        self.payload_hashes: dict[str, str] = {}
        self.highest: dict[tuple[str, int, str], int] = {}
        self.tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.trusted: dict[str, Any] = {}  # keyid → node public key; empty: do not verify
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def queue(self, status: int, code: str | None = None, message: str = "", *,
              body: Any = None, **headers: str) -> None:
        """Answer the next request with ``status`` (the hub's error body if ``code``)."""
        self.script.append(error(status, code, message, **headers) if code
                           else Answer(status, body, headers))

    def stop(self) -> None:
        """Take the hub off the network (its port is then refused)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def start(self, port: int) -> None:
        """Bring the hub back on ``port``."""
        serve(self, port)

    def write_pub(self, path: Path) -> Path:
        path.write_text(dsse.public_key_b64(self.key.public_key) + "\n", encoding="utf-8")
        return path

    def answer(self, path: str, body: bytes) -> Answer:
        import time

        with self.lock:
            self.posts.append((path, body))
            self.post_times.append(time.monotonic())
            if self.script:
                return self.script.pop(0)
            return self._contract(path, body)

    def _contract(self, path: str, body: bytes) -> Answer:
        if path not in ENDPOINT_KIND:
            return error(404, "not_found", f"no route {path}")
        try:
            env = json.loads(body)
            model = PAYLOAD_MODELS[env["payloadType"]]
            if self.trusted:
                payload, _ = dsse.verify(env, self.trusted, payload_type=env["payloadType"])
            else:
                payload = base64.b64decode(env["payload"])
            doc = model.model_validate_json(payload)
        except Exception as exc:  # noqa: BLE001 - any bad body is a 422 here
            return error(422, "invalid_payload", f"not a valid document: {exc}")
        if kind_of(doc) != ENDPOINT_KIND[path]:
            return error(422, "wrong_endpoint", f"a {kind_of(doc)} goes elsewhere")
        digest = hashlib.sha256(payload).hexdigest()
        if doc.submission_id in self.answers:
            if self.payload_hashes[doc.submission_id] == digest:
                return Answer(200, self.answers[doc.submission_id])
            return error(409, "conflict", "another document with this id is stored")
        key = (doc.country, doc.period.year, doc.catalogue)
        if self.highest.get(key, 0) >= doc.revision:
            return error(409, "stale_revision", f"the hub holds revision "
                         f"{self.highest[key]} for {doc.country} {doc.period.year}")
        self.highest[key] = doc.revision
        fields = {"kind": kind_of(doc), "submission_id": doc.submission_id,
                  "country": doc.country, "year": doc.period.year, "catalogue": doc.catalogue,
                  "revision": doc.revision, "payload_sha256": digest,
                  "received_at": datetime.now(UTC).isoformat(), "hub_version": "fake",
                  "audit_seq": len(self.answers) + 1, "audit_hash": "ab" * 32}
        if self.tamper:
            fields = self.tamper(fields)
        receipt = Receipt.model_validate_json(json.dumps(fields))
        out = {"receipt": json.loads(receipt.to_bytes()),
               "signed_receipt": dsse.sign(receipt.to_bytes(), self.signing_key,
                                           payload_type=RECEIPT_TYPE)}
        self.answers[doc.submission_id] = out
        self.payload_hashes[doc.submission_id] = digest
        return Answer(201, out)


def serve(hub: FakeHub, port: int = 0) -> ThreadingHTTPServer:
    """Serve ``hub`` on 127.0.0.1:``port`` (0: any free port) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            ans = hub.answer(self.path, self.rfile.read(length))
            raw = ans.body if isinstance(ans.body, bytes) else json.dumps(ans.body).encode()
            self.send_response(ans.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            for k, v in ans.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    hub.server = server
    return server


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    serve(hub)
    try:
        yield hub
    finally:
        hub.stop()


@dataclass(frozen=True)
class NodeFolder:
    root: Path
    config_path: Path
    cfg: NodeConfig
    pub: str  # the node's public key, base64


def make_node(root: Path, *, hub_url: str = "", hub_key: Path | None = None,
              data: Path | None = None, specs: Path | None = None,
              country: str = "NO", review: bool = False) -> NodeFolder:
    """A node folder: key pair, node.toml (relative paths) and, if given, its data file."""
    from node.config import load_node_config

    root.mkdir(parents=True, exist_ok=True)
    _, pub = keygen(root / f"{country}.pem")
    cfg = NodeConfig(review=review, country=country, year=YEAR,
                     data=data or Path("data.parquet"), key=Path(f"{country}.pem"),
                     outbox=Path("outbox"), hub_url=hub_url, hub_key=hub_key, specs=specs)
    path = root / "node.toml"
    write_node_config(path, cfg)
    return NodeFolder(root, path, load_node_config(path), pub)


@pytest.fixture
def node_factory() -> Callable[..., NodeFolder]:
    """``make_node`` for tests (conftest modules are not imported by tests directly)."""
    return make_node


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one ``emsbench: error:`` line (there must be exactly one)."""
        [line] = [x for x in self.err.splitlines() if x.startswith("emsbench: error:")]
        return line


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run ``emsbench`` in this process and capture what it prints.

    Not capsys: Prefect binds its console log handler to whatever ``sys.stderr`` is when it
    first configures logging (lazily, in the first flow run); a capsys stream is closed
    after its test and later tests would log into a closed file. These buffers stay open.
    """
    import contextlib
    import io

    from emsbench.cli import main

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(scope="session")
def prefect_ready(prefect_harness: None) -> None:
    """The test harness, with its lazy start-up (which reconfigures logging) done."""
    from prefect import flow

    @flow(name="warm-up")
    def warm_up() -> None:
        return None

    warm_up()


@pytest.fixture
def flow_log(prefect_ready: None) -> Iterator[list[str]]:
    """Messages logged by the node's flow runs and task runs during the test."""
    import logging

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "prefect.task_runs")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield messages
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "NO-2025.parquet"
    generate("NO", YEAR, path, rows=3000, seed=7)
    return path


@pytest.fixture(scope="session")
def computed(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[IngestReport, list[IndicatorResult], list[IndicatorSpec]]:
    """A real, protected computation of the packaged catalogue on synthetic data."""
    specs = load_specs()
    con, report = open_missions(synthetic_data, YEAR, tmp_path_factory.mktemp("work"))
    try:
        ctx = Context("NO", YEAR, population_by("NO", YEAR))
        return report, compute_all(con, specs, 5, ctx=ctx), specs
    finally:
        con.close()
