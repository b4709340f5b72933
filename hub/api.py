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
server writes beside the database (readable by the hub's operator only).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from emsbench import __version__, dsse
from emsbench.conformance import CONFLICT_CODES, Policy, check_document
from emsbench.specs import IndicatorSpec, catalogue_sha256, load_specs
from emsbench.wire import SUBMISSION_TYPE, WITHDRAWAL_TYPE, Submission, Withdrawal
from hub import openapi as api_docs
from hub.config import HubConfig
from hub.signing import load_or_create_hub_key, sign_receipt
from hub.store import Store, StoreRefusal, utcnow
from hub.trust import KeyRefused, ReloadingTrust

log = logging.getLogger("emsbench.hub")

# Status for each reason dsse.verify gives. Unsigned and bad signatures are
# authentication failures (401); a well-signed envelope by a key we do not trust is
# authenticated but not authorised (403).
_SIGNATURE_STATUS = {"invalid_envelope": 400, "unsigned": 401, "untrusted_key": 403,
                     "bad_signature": 401}
_STATUS_CODE = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large", 415: "unsupported_media_type"}
RETRY_AFTER_SECONDS = 2


class ApiError(Exception):
    """A refusal with an HTTP status, a stable code and a message for the node operator."""

    def __init__(self, status: int, code: str, message: str, *, country: str | None = None,
                 submission_id: str | None = None,
                 problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.country, self.submission_id = country, submission_id
        self.problems = problems or []


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
    specs: list[IndicatorSpec]
    catalogue: str
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
    try:
        payload, keyid = dsse.verify(envelope, trust.keys(), payload_type=payload_type)
    except dsse.SignatureError as exc:
        raise ApiError(_SIGNATURE_STATUS.get(exc.code, 400), exc.code, str(exc)) from exc
    key_country = trust.country_of(keyid)
    now = utcnow()
    try:
        trust.check_valid(keyid, now)
    except KeyRefused as exc:
        raise ApiError(403, exc.code, str(exc), country=key_country) from exc
    # Check the claimed country before the full schema: a node signing for another
    # country is a trust problem and must be reported as such, even if the payload is
    # also malformed.
    try:
        claimed = json.loads(payload).get("country")
    except (ValueError, AttributeError, RecursionError):
        claimed = None
    if isinstance(claimed, str) and claimed != key_country:
        # The claim is attacker text: quoted, cut short and ASCII before it is echoed or
        # audited (a lone surrogate once broke the audit write).
        raise ApiError(403, "country_mismatch", f"the payload is for country "
                       f"{ascii(claimed[:8])} but "
                       f"the signing key is trusted for {key_country} only",
                       country=key_country)
    model = Submission if payload_type == SUBMISSION_TYPE else Withdrawal
    try:
        doc = model.model_validate_json(payload)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                  for e in exc.errors()[:10]]
        more = f" (+{exc.error_count() - 10} more)" if exc.error_count() > 10 else ""
        raise ApiError(422, "invalid_payload", f"the payload is not a valid {model.__name__}: "
                       + "; ".join(errors) + more, country=key_country) from exc
    if doc.country != key_country:  # e.g. the raw JSON could not be read above
        raise ApiError(403, "country_mismatch", f"the payload is for country {doc.country} "
                       f"but the signing key is trusted for {key_country} only",
                       country=key_country, submission_id=doc.submission_id)
    problems = check_document(doc, state.specs, state.catalogue, state.policy, now)
    if problems:
        first = problems[0]
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ApiError(409 if first.code in CONFLICT_CODES else 422, first.code, shown + more,
                       country=doc.country, submission_id=doc.submission_id,
                       problems=[{"code": p.code, "message": p.message} for p in problems[:50]])
    try:
        return state.store.accept(doc, text, payload, keyid, remote,
                                  lambda receipt: sign_receipt(receipt, state.key),
                                  discredited={e.keyid: e.revoked_at for e in trust.entries()
                                               if e.revoked_at is not None})
    except StoreRefusal as exc:
        raise ApiError(409, exc.code, str(exc), country=doc.country,
                       submission_id=doc.submission_id) from None


def _write_token(path: Path) -> str:
    """A fresh random token for the hub's own CLI, in a file only the owner can read."""
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return token


def create_app(config: HubConfig) -> FastAPI:
    """Build the hub app; loads specs, trust registry and key now and fails fast on errors."""
    specs = load_specs(config.specs)
    trust = ReloadingTrust(config.trust_registry)
    key = load_or_create_hub_key(config.key_path)
    # The store last: everything that can refuse to start does so before the file is held.
    state = HubState(
        config=config, store=Store(config.database), trust=trust, specs=specs,
        catalogue=catalogue_sha256(specs), policy=config.policy.policy(), key=key,
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
                "catalogue": state.catalogue, "trust_reloads": trust.reloads,
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
                if exc.code not in ("conflict", "stale_revision"):  # the store audited those
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

    @app.get("/v1/records", **api_docs.RECORDS_ROUTE)
    async def records(request: Request, year: int | None = None) -> dict[str, Any]:
        _authorise(request)
        rows = await run_in_threadpool(state.store.records, year)
        return {"records": [r.to_json() for r in rows]}

    @app.get("/v1/audit", **api_docs.AUDIT_ROUTE)
    async def audit(request: Request) -> dict[str, Any]:
        _authorise(request)
        return {"entries": await run_in_threadpool(state.store.audit_entries)}

    # /v1/schema/{name}, /docs (Swagger UI served offline) and the full OpenAPI document.
    api_docs.install(app)
    return app
