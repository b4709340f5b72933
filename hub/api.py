"""The hub's HTTP API: receive signed documents, check them, store them.

``POST /v1/submissions`` (and ``/v1/withdrawals``) take a DSSE envelope and run the checks in
a fixed order, the cheap and unauthenticated ones first: load, body size, JSON, signature
against the trust registry, the key's validity now, the country of the signing key, the
wire model, then ``emsbench.conformance`` (catalogue, counts, disclosure, windows), then the
store's revision rule. The first failing stage answers ``{"error": {"code", "message",
"problems"}}`` with a 4xx and one audit entry; nothing else is stored. A document that
passes is stored with its audit entry in one transaction and answered with a receipt signed
by the hub's key (201; 200 with the same receipt for an identical resubmission).

Every error, including overload and an unexpected fault, is JSON; transient ones are 503
with ``Retry-After``, so no client ever sees a bare 500. ``/v1/records`` and ``/v1/audit``
let the hub's own CLI read while the server holds the database; they need the token the
server writes beside the database (readable by the hub's operator only). ``/public/``
serves the site ``emsbench hub publish`` wrote, read-only (``hub.site_serve``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from emsbench import __version__, dsse
from emsbench.conformance import Policy
from emsbench.files import write_atomic
from emsbench.wire import SUBMISSION_TYPE, WITHDRAWAL_TYPE
from hub import openapi as api_docs
from hub.catalogues import Catalogues
from hub.config import HubConfig
from hub.signing import load_or_create_hub_key, sign_receipt
from hub.site_serve import PublicFiles
from hub.store import Store, StoreRefusal, utcnow
from hub.trust import ReloadingTrust
from hub.verification import ApiError, judge, open_document

log = logging.getLogger("emsbench.hub")

_STATUS_CODE = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large", 415: "unsupported_media_type"}
RETRY_AFTER_SECONDS = 2


def error_body(code: str, message: str, problems: list[dict[str, str]] | None = None
               ) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if problems:
        body["problems"] = problems
    return {"error": body}


def error_response(exc: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
    return JSONResponse(error_body(exc.code, exc.message, exc.problems),
                        status_code=exc.status, headers=headers)


@dataclass(frozen=True)
class HubState:
    config: HubConfig
    store: Store
    trust: ReloadingTrust
    catalogues: Catalogues
    policy: Policy
    key: dsse.KeyPair
    token: str


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; refuse early on a declared or actual larger body."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body of {declared} bytes exceeds the "
                       f"limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    # Streaming guards against a missing or false Content-Length (chunked uploads).
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_CHUNK_BYTES = 1 << 20


def _json_chunks(name: str, items: Iterable[Any]) -> list[bytes]:
    """``{"<name>": [item, …]}`` as compact UTF-8 JSON (as ``JSONResponse`` writes it), in
    pieces of about ``_CHUNK_BYTES``: encoded one item per ``json.dumps`` call (the GIL is
    free between items) and sent a piece at a time (no one copy of the whole answer on the
    event loop)."""
    chunks: list[bytes] = []
    part = bytearray(b'{"' + name.encode("ascii") + b'":[')
    for i, item in enumerate(items):
        if i:
            part += b","
        part += json.dumps(item, ensure_ascii=False, allow_nan=False,
                           separators=(",", ":")).encode("utf-8")
        if len(part) >= _CHUNK_BYTES:
            chunks.append(bytes(part))
            part.clear()
    part += b"]}"
    chunks.append(bytes(part))
    return chunks


async def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _process(state: HubState, body: bytes, remote: str, payload_type: str
             ) -> tuple[dict[str, Any], bool]:
    """Every check after the body was read; runs in a worker thread (DuckDB blocks)."""
    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16/32, but the
        # envelope is stored as UTF-8 text.
        text = body.decode("utf-8")
        envelope = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8 JSON: {exc}") from exc
    trust = state.trust.current()
    # One time for every check and for the record: the ledger re-checks at received_at.
    now = utcnow()
    opened = open_document(envelope, trust, now, payload_type)
    doc = opened.doc
    judge(doc, state.catalogues, state.policy, now)
    try:
        return state.store.accept(doc, text, opened.payload, opened.keyid, remote,
                                  lambda receipt: sign_receipt(receipt, state.key),
                                  received_at=now, counts=trust.may_sign)
    except StoreRefusal as exc:
        raise ApiError(409, exc.code, str(exc), country=doc.country,
                       submission_id=doc.submission_id, audited=True) from None


def _write_token(path: Path) -> str:
    """A fresh random token for the hub's own CLI, in a file only the owner can read."""
    token = secrets.token_urlsafe(32)
    write_atomic(path, (token + "\n").encode("ascii"), mode=0o600)
    return token


def create_app(config: HubConfig) -> FastAPI:
    """Build the hub app; loads specs, trust registry and key now and fails fast on errors."""
    catalogues = config.catalogues()
    trust = ReloadingTrust(config.trust_registry)
    key = load_or_create_hub_key(config.key_path)
    # The store last: everything that can refuse to start does so before the file is held.
    state = HubState(
        config=config, store=Store(config.database), trust=trust,
        catalogues=catalogues, policy=config.policy.policy(), key=key,
        token=_write_token(config.token_path))
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # On a clean stop: fold the write-ahead log into the file and retire the token, so
        # the CLI reads the file directly again. A killed hub replays the log on restart.
        state.store.close()
        config.token_path.unlink(missing_ok=True)

    app = FastAPI(version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  **api_docs.APP_METADATA)
    app.state.hub = state
    # Requests being checked at once; past it the hub answers 503 at once instead of
    # queueing without bound.
    slots = asyncio.Semaphore(config.max_concurrent)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODE.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                           for e in exc.errors())
        return JSONResponse(error_body("invalid_request", detail), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A fault of ours (or of the disk): logged with its traceback for the operator; the
        # client gets JSON and is told to retry, never a bare 500.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(ApiError(503, "internal_error", "the hub could not process the "
                                       "request; it was not stored. Retry later"))

    @app.get("/v1/health", **api_docs.HEALTH_ROUTE)
    async def health() -> dict[str, Any]:
        count = await run_in_threadpool(state.store.count_documents)
        trust = state.trust
        return {"status": "ok", "version": __version__, "submissions": count,
                "catalogue": state.catalogues.current.id,
                "catalogues": [{"id": c.id, "name": c.name}
                               for c in state.catalogues.releases],
                "trust_reloads": trust.reloads,
                "trust_error": trust.last_error}

    async def intake(request: Request, payload_type: str) -> JSONResponse:
        remote = request.client.host if request.client else "unknown"
        if slots.locked():
            exc = ApiError(503, "overloaded", f"the hub is checking {config.max_concurrent} "
                           "submissions already; retry after the Retry-After delay")
            await run_in_threadpool(state.store.reject, exc.code, exc.message, remote)
            return error_response(exc)
        async with slots:
            try:
                body = await _read_body(request, config.max_body_bytes)
                response, created = await run_in_threadpool(_process, state, body, remote,
                                                             payload_type)
            except ApiError as exc:
                if not exc.audited:
                    await run_in_threadpool(state.store.reject, exc.code, exc.message, remote,
                                            exc.country, exc.submission_id)
                return error_response(exc)
        return JSONResponse(response, status_code=201 if created else 200)

    @app.post("/v1/submissions", **api_docs.INTAKE_ROUTES["submission"])
    async def submit(request: Request) -> JSONResponse:
        return await intake(request, SUBMISSION_TYPE)

    @app.post("/v1/withdrawals", **api_docs.INTAKE_ROUTES["withdrawal"])
    async def withdraw(request: Request) -> JSONResponse:
        return await intake(request, WITHDRAWAL_TYPE)

    def _authorise(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {state.token}".encode()):
            raise ApiError(401, "unauthorized", "this endpoint is for the hub's own CLI: send "
                           f"'Authorization: Bearer <token>' with the token in "
                           f"{config.token_path}")

    # The CLI's reads are the whole store: read (a snapshot of its own, no lock) and
    # encoded in a worker thread, a piece at a time, so a long export never holds the event
    # loop, nor the GIL for long, while submissions arrive.
    @app.get("/v1/records", **api_docs.RECORDS_ROUTE)
    async def records(request: Request, year: int | None = None) -> Response:
        _authorise(request)
        chunks = await run_in_threadpool(
            lambda: _json_chunks("records", (r.to_json() for r in state.store.records(year))))
        return StreamingResponse(_stream(chunks), media_type="application/json")

    @app.get("/v1/audit", **api_docs.AUDIT_ROUTE)
    async def audit(request: Request) -> Response:
        _authorise(request)
        chunks = await run_in_threadpool(
            lambda: _json_chunks("entries", state.store.audit_entries()))
        return StreamingResponse(_stream(chunks), media_type="application/json")

    # /v1/schema/{name}, /docs (Swagger UI served offline) and the full OpenAPI document.
    api_docs.install(app)

    # The published site (`emsbench hub publish`), read-only; see hub.site_serve.
    @app.get("/public", include_in_schema=False)
    async def public_root() -> RedirectResponse:
        return RedirectResponse("public/")  # relative: right behind a proxy's path prefix too

    app.mount("/public", PublicFiles(directory=config.public_dir, html=True, check_dir=False),
              name="public")
    return app
