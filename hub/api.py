"""The hub's HTTP API: receive signed submissions, check them, store them.

``POST /v1/submissions`` takes a DSSE envelope and runs the checks in a fixed order, the
cheap and unauthenticated ones first: body size, JSON, signature against the trust
registry, country of the signing key, wire model, indicator specs. The first failure is
answered with ``{"error": {"code", "message"}}`` and an audit row; nothing else is stored.
A request that passes every check is stored with its audit row in one transaction and
answered with a receipt (201; 200 with the same receipt for an identical resubmission).

Specs and the trust registry are loaded once when the app is created, so a bad registry
or spec stops the hub at start-up instead of failing requests one by one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from emsbench import __version__, dsse
from emsbench.specs import IndicatorSpec, load_specs
from emsbench.wire import IndicatorResult, Submission
from hub.config import HubConfig
from hub.store import Store, SubmissionConflict
from hub.trust import TrustRegistry

# Status for each reason dsse.verify gives. Unsigned and bad signatures are
# authentication failures (401); a well-signed envelope by a key we do not trust is
# authenticated but not authorised (403).
_SIGNATURE_STATUS = {"invalid_envelope": 400, "unsigned": 401, "untrusted_key": 403,
                     "bad_signature": 401}
_STATUS_CODE = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """A refusal with an HTTP status, a stable code and a message for the node operator."""

    def __init__(self, status: int, code: str, message: str, *, country: str | None = None,
                 submission_id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.country, self.submission_id = country, submission_id


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@dataclass(frozen=True)
class HubState:
    config: HubConfig
    store: Store
    trust: TrustRegistry
    specs: dict[str, IndicatorSpec]


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


def _check_specs(sub: Submission, specs: dict[str, IndicatorSpec]) -> None:
    seen: set[str] = set()
    ctx = {"country": sub.country, "submission_id": sub.submission_id}
    for result in sub.indicators:
        if result.spec_id in seen:
            raise ApiError(422, "invalid_payload",
                           f"indicator {result.spec_id} appears more than once", **ctx)
        seen.add(result.spec_id)
        spec = specs.get(result.spec_id)
        if spec is None:
            raise ApiError(422, "unknown_spec",
                           f"indicator {result.spec_id} is not defined at the hub; known: "
                           f"{', '.join(sorted(specs))}", **ctx)
        if result.spec_version != spec.version or result.spec_sha256 != spec.sha256:
            raise ApiError(
                409, "spec_mismatch",
                f"indicator {spec.id}: the node computed version {result.spec_version} "
                f"(sha256 {result.spec_sha256[:12]}…) but the hub has version {spec.version} "
                f"(sha256 {spec.sha256[:12]}…); update the node's indicator specs to the "
                "hub's and run the node again", **ctx)
        # Same hash means same definition, but the shape is the node's doing: check it so
        # the merge can rely on it (a malformed result would otherwise surface only in
        # the report).
        problem = _shape_problem(result, spec)
        if problem:
            raise ApiError(422, "invalid_payload", f"indicator {spec.id}: {problem}", **ctx)


def _shape_problem(result: IndicatorResult, spec: IndicatorSpec) -> str | None:
    if result.type != spec.type:
        return f"type is {result.type} but the spec defines {spec.type}"
    if result.strata != spec.strata:
        return f"strata are {result.strata} but the spec defines {spec.strata}"
    if spec.bins is not None:
        bad = [c.stratum for c in result.cells if spec.bins.runs_beyond(c.bins or [])]
        if bad:
            return (f"{len(bad)} cell(s) have bins beyond the spec's {spec.bins.n_bins}, "
                    f"first {bad[0]}")
    return None


def _process(state: HubState, body: bytes, remote: str) -> tuple[dict[str, Any], bool]:
    """Every check after the body was read; runs in a worker thread (DuckDB blocks)."""
    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16/32, but the
        # envelope is stored as UTF-8 text.
        text = body.decode("utf-8")
        envelope = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8 JSON: {exc}") from exc
    try:
        payload, keyid = dsse.verify(envelope, state.trust.keys())
    except dsse.SignatureError as exc:
        raise ApiError(_SIGNATURE_STATUS.get(exc.code, 400), exc.code, str(exc)) from exc
    key_country = state.trust.country_of(keyid)
    # Check the claimed country before the full schema: a node signing for another
    # country is a trust problem and must be reported as such, even if the payload is
    # also malformed.
    try:
        claimed = json.loads(payload).get("country")
    except (ValueError, AttributeError, RecursionError):
        claimed = None
    if isinstance(claimed, str) and claimed != key_country:
        raise ApiError(403, "country_mismatch", f"the payload is for country {claimed} but "
                       f"the signing key is trusted for {key_country} only",
                       country=key_country)
    try:
        sub = Submission.from_bytes(payload)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                  for e in exc.errors()[:10]]
        more = f" (+{exc.error_count() - 10} more)" if exc.error_count() > 10 else ""
        raise ApiError(422, "invalid_payload", "the payload is not a valid submission: "
                       + "; ".join(errors) + more, country=key_country) from exc
    if sub.country != key_country:  # e.g. the raw JSON could not be read above
        raise ApiError(403, "country_mismatch", f"the payload is for country {sub.country} "
                       f"but the signing key is trusted for {key_country} only",
                       country=key_country, submission_id=sub.submission_id)
    _check_specs(sub, state.specs)
    try:
        return state.store.accept(text, payload, sub, keyid, remote)
    except SubmissionConflict as exc:
        # The store has already audited the conflict in its own transaction.
        raise ApiError(409, exc.code, str(exc), country=sub.country,
                       submission_id=sub.submission_id) from None


def create_app(config: HubConfig) -> FastAPI:
    """Build the hub app; loads specs and trust registry now and fails fast on errors."""
    state = HubState(
        config=config,
        store=Store(config.database),
        trust=TrustRegistry.load(config.trust_registry),
        specs={s.id: s for s in load_specs(config.specs)},
    )
    app = FastAPI(title="emsbench hub", version=__version__)
    app.state.hub = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

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

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        count = await run_in_threadpool(state.store.count_submissions)
        return {"status": "ok", "version": __version__, "submissions": count}

    @app.post("/v1/submissions")
    async def submit(request: Request) -> JSONResponse:
        remote = request.client.host if request.client else "unknown"
        try:
            body = await _read_body(request, config.max_body_bytes)
            receipt, created = await run_in_threadpool(_process, state, body, remote)
        except ApiError as exc:
            if exc.code != SubmissionConflict.code:  # conflicts are audited by the store
                await run_in_threadpool(state.store.reject, exc.code, exc.message, remote,
                                        exc.country, exc.submission_id)
            raise
        return JSONResponse(receipt, status_code=201 if created else 200)

    return app
