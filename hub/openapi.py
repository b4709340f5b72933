"""The hub's OpenAPI document, its offline ``/docs`` page and the published JSON Schemas.

The intake routes read the raw body themselves (the signature covers the exact bytes), so
FastAPI cannot see what they take or answer. This module says it instead, once:

* the models of what travels: the DSSE ``Envelope``, the receipt response, the error body;
* ``INTAKE_ERRORS``: every error code the intake can answer, by HTTP status (a test reads
  ``hub.api``, ``hub.trust``, ``hub.store``, ``emsbench.dsse`` and ``emsbench.conformance``
  and checks each code they can raise is listed under the status it is sent with);
* the keyword arguments of each route (``INTAKE_ROUTES``, ``HEALTH_ROUTE``…), which
  ``hub.api`` passes to its decorators;
* ``install``: ``GET /v1/schema/{name}`` (the files in ``emsbench/schema/`` and nothing
  else), ``/docs`` with Swagger UI served from the installed ``fastapi-offline`` package
  under ``/docs-assets`` (no CDN: the page works offline), and an ``app.openapi`` that adds
  the payload models (``Submission``, ``Withdrawal``, ``Receipt``) and the bearer scheme to
  the components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from emsbench.conformance import CONFLICT_CODES
from emsbench.wire import (
    RECEIPT_TYPE,
    SCHEMA_DIR,
    SUBMISSION_TYPE,
    WITHDRAWAL_TYPE,
    Receipt,
    Submission,
    Withdrawal,
)

DOCS_ASSETS = "/docs-assets"
# Swagger UI 5 (OpenAPI 3.1, which FastAPI writes) as shipped by fastapi-offline.
ASSETS_PACKAGE = ("fastapi_offline", "static")
SCHEMA_MEDIA_TYPE = "application/schema+json"
COMPONENTS = "#/components/schemas/"
BEARER_SCHEME = "hubToken"


# --- what travels ---------------------------------------------------------------------


class Signature(BaseModel):
    keyid: str = Field(description="SHA-256 (hex) of the signer's raw Ed25519 public key")
    sig: str = Field(description="Base64 Ed25519 signature over PAE(payloadType, payload)",
                     json_schema_extra={"contentEncoding": "base64"})


class Envelope(BaseModel):
    """A DSSE envelope (https://github.com/secure-systems-lab/dsse): the signatures cover
    the exact payload bytes, so the hub reads the body itself and never re-serialises it."""

    payloadType: str = Field(description="Media type of the payload, e.g. "
                             f"{SUBMISSION_TYPE}")
    payload: str = Field(description="The signed document's exact bytes, base64 (standard "
                         "alphabet, padded)", json_schema_extra={"contentEncoding": "base64"})
    signatures: list[Signature] = Field(min_length=1, description="At least one; the hub "
                                        "uses the first by a key in its trust registry that "
                                        "verifies")


class ReceiptResponse(BaseModel):
    """What the hub answers for a stored document."""

    receipt: Receipt = Field(description="The receipt, as plain JSON")
    signed_receipt: Envelope = Field(
        description=f"The same receipt signed by the hub's key: payloadType {RECEIPT_TYPE}, "
                    "payload the base64 of the receipt's exact bytes. Keep it as proof of "
                    "delivery; audit_seq and audit_hash anchor the hub's audit chain")


class ErrorProblem(BaseModel):
    code: str = Field(description="A conformance code (see the 409 and 422 responses)")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable reason; the response lists the "
                      "codes each status can carry")
    message: str = Field(description="What went wrong and what to do, for the node operator")
    problems: list[ErrorProblem] | None = Field(
        None, description="Present on conformance refusals only: every problem found (up "
                          "to 50), the first of which gave code and status")


class ErrorBody(BaseModel):
    """Every error the hub answers, whatever the route and status."""

    error: ErrorDetail


class CatalogueRef(BaseModel):
    id: str = Field(description="SHA-256 catalogue id, as submissions carry it")
    name: str = Field(description="The release name, or 'unreleased'")


class Health(BaseModel):
    status: Literal["ok"]
    version: str = Field(description="The hub's software version")
    submissions: int = Field(description="Documents stored (every revision)")
    catalogue: str = Field(description="SHA-256 id of the hub's current indicator catalogue "
                           "release")
    catalogues: list[CatalogueRef] = Field(description="Every catalogue release the hub "
                                           "accepts, current first; a node computes with one")
    trust_reloads: int = Field(description="Times a changed trust registry was loaded")
    trust_error: str | None = Field(description="Why the newest trust registry file is not "
                                    "in use (the last good one is); null when it is")


class StoredRecord(BaseModel):
    submission_id: str
    kind: Literal["submission", "withdrawal"]
    country: str
    year: int
    catalogue: str
    revision: int
    payload_sha256: str
    keyid: str
    received_at: str = Field(description="ISO 8601 with UTC offset")
    envelope: str = Field(description="The DSSE envelope exactly as received (JSON text)")
    response: ReceiptResponse


class Records(BaseModel):
    records: list[StoredRecord]


class AuditEntry(BaseModel):
    seq: int
    at: str = Field(description="ISO 8601 with UTC offset")
    remote: str | None
    country: str | None
    submission_id: str | None
    outcome: Literal["accepted", "duplicate", "rejected"]
    code: str
    message: str
    prev_hash: str
    hash: str


class Audit(BaseModel):
    entries: list[AuditEntry] = Field(description="In sequence order; a hash chain "
                                      "(emsbench.chain)")


# --- which codes each status carries --------------------------------------------------

# The rules of emsbench.conformance (its docstring table, one line each).
CONFORMANCE_CODES: dict[str, str] = {
    "empty_submission": "no indicator at all",
    "duplicate_indicator": "an indicator appears twice",
    "unknown_spec": "an indicator the catalogue does not define",
    "spec_mismatch": "another version of a spec, or another catalogue release",
    "missing_indicator": "a catalogue indicator is absent",
    "wrong_shape": "type or strata differ from the spec",
    "incomplete_grid": "a stratum of the spec's grid is missing (empty ones are sent too)",
    "duplicate_stratum": "the same stratum twice in one indicator",
    "unknown_stratum_value": "a stratum value outside the column's code set",
    "invalid_bins": "histogram runs out of order, overlapping or out of range",
    "run_off_lattice": "a histogram run that does not start and end on the spec's band edges",
    "invalid_quantiles": "exact quantiles with other keys than the median and the spec's "
                         "quantile, of a cell without cases, or outside the runs holding "
                         "their order statistics",
    "suppression_inconsistent": "a withheld cell with counts, or a released one without",
    "count_out_of_range": "a count above the policy's plausibility bound",
    "numerator_exceeds_denominator": "a numerator larger than its denominator",
    "disclosure_violation": "a released count (or complement) from 1 to threshold − 1",
    "recoverable_by_subtraction": "released counts of indicators on the same population give "
                                  "a withheld count away, or a sum of withheld counts from 1 "
                                  "to threshold − 1 (no secondary suppression across margins)",
    "threshold_too_low": "the declared threshold is under the federation minimum",
    "inconsistent_quality": "accepted > read, or rejections exceed read − accepted",
    "year_out_of_window": "the period is outside the years the hub accepts",
    "created_at_out_of_window": "created in the future, too long ago, or before the period",
}

INTAKE_ERRORS: dict[int, dict[str, str]] = {
    400: {
        "invalid_json": "the body is not UTF-8 JSON",
        "invalid_envelope": "not a JSON object, payloadType is not this endpoint's, or the "
                            "payload is missing or not base64",
    },
    401: {
        "unsigned": "the envelope carries no signature",
        "bad_signature": "a signature by a trusted key does not verify: the payload or the "
                         "signature was altered",
    },
    403: {
        "untrusted_key": "no signature is by a key in the hub's trust registry",
        "revoked_key": "the signing key was revoked",
        "expired_key": "the signing key's validity ended",
        "key_not_yet_valid": "the signing key's validity has not begun",
        "country_mismatch": "the payload's country is not the one the signing key is "
                            "trusted for",
    },
    409: {
        **{c: CONFORMANCE_CODES[c] for c in sorted(CONFLICT_CODES)},
        "conflict": "the submission id is already stored with another payload",
        "stale_revision": "the revision is not higher than every stored one of its country, "
                          "year and catalogue",
    },
    413: {"payload_too_large": "the body exceeds the hub's max_body_bytes"},
    422: {
        "invalid_payload": "the payload is not a valid document of the wire model (strict "
                           "types, no unknown fields, times with an offset)",
        **{c: m for c, m in CONFORMANCE_CODES.items() if c not in CONFLICT_CODES},
    },
    503: {
        "overloaded": "the hub is checking as many documents as it may at once",
        "internal_error": "a fault of the hub; nothing was stored",
    },
}
# Codes of the other routes.
UNAUTHORIZED = {"unauthorized": "no or a wrong 'Authorization: Bearer <token>'; the token is "
                                "in the file the hub writes beside its database"}
INVALID_REQUEST = {"invalid_request": "a query parameter is malformed"}
NOT_FOUND = {"not_found": "no published schema of that name"}
INTERNAL = {"internal_error": INTAKE_ERRORS[503]["internal_error"]}

_STATUS_INTRO = {
    400: "The body is not a DSSE envelope for this endpoint.",
    401: "No signature, or one that does not verify.",
    403: "Authenticated, but the key may not sign this document now.",
    404: "Not found.",
    409: "The document conflicts with the catalogue release or with what is stored.",
    413: "The body is too large (the hub stops reading at its limit).",
    422: "The payload is signed but invalid; `problems` lists every conformance problem.",
    503: "Transient: retry after `Retry-After` seconds. Nothing was stored.",
}


def _error(status: int, codes: Mapping[str, str], intro: str | None = None) -> dict[str, Any]:
    """An error response: the ErrorBody schema and the codes it can carry, in the
    description (for people) and in ``x-error-codes`` (for programs)."""
    lines = [intro or _STATUS_INTRO.get(status, "Refused."), "", "`error.code` is one of:", ""]
    lines += [f"- `{code}`: {meaning}" for code, meaning in codes.items()]
    response: dict[str, Any] = {"model": ErrorBody, "description": "\n".join(lines),
                                "x-error-codes": list(codes)}
    if status == 503:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
    return response


def _envelope_body(payload_type: str, model: str) -> dict[str, Any]:
    stem = model.lower()
    return {"requestBody": {
        "required": True,
        "description": (
            f"A DSSE envelope whose `payload` is the base64 of a `{model}` document in "
            "JSON (payloadType `" + payload_type + "`), signed with the node's Ed25519 key "
            f"registered in the hub's trust registry. The payload's JSON Schema is published "
            f"at `GET /v1/schema/{stem}-v2.json` and is `{model}` in the components. The hub "
            "reads the raw body: the signature covers the exact payload bytes."),
        "content": {"application/json": {"schema": {
            "allOf": [{"$ref": COMPONENTS + "Envelope"}],
            "properties": {
                "payloadType": {"const": payload_type},
                "payload": {"contentEncoding": "base64", "contentMediaType": payload_type,
                            "contentSchema": {"$ref": COMPONENTS + model}},
            },
        }}},
    }}


def _intake_route(kind: Literal["submission", "withdrawal"]) -> dict[str, Any]:
    payload_type, model = ((SUBMISSION_TYPE, "Submission") if kind == "submission"
                           else (WITHDRAWAL_TYPE, "Withdrawal"))
    extra = (" For a withdrawal only the window and catalogue rules of conformance apply."
             if kind == "withdrawal" else "")
    return {
        "summary": f"Send a signed {kind}",
        "description": (
            "Checks run in a fixed order, cheap and unauthenticated ones first: body size, "
            "JSON, signature against the trust registry, the key's validity now, the "
            "payload's country against the key's, the wire model, conformance (catalogue, "
            "counts, disclosure, windows), then the store's revision rule. The first "
            "failing stage answers with its status and code and one audit entry; nothing "
            "else is stored." + extra),
        "tags": ["intake"],
        "status_code": 201,
        "response_model": None,
        "responses": {
            201: {"model": ReceiptResponse, "description": f"The {kind} was stored; the "
                  "receipt is signed by the hub"},
            200: {"model": ReceiptResponse, "description": "An identical resubmission: the "
                  "receipt stored the first time"},
            **{status: _error(status, codes) for status, codes in INTAKE_ERRORS.items()},
        },
        "openapi_extra": _envelope_body(payload_type, model),
    }


INTAKE_ROUTES: dict[str, dict[str, Any]] = {
    "submission": _intake_route("submission"), "withdrawal": _intake_route("withdrawal")}

HEALTH_ROUTE: dict[str, Any] = {
    "summary": "Liveness and what the hub checks against",
    "tags": ["operations"],
    "response_model": None,
    "responses": {200: {"model": Health, "description": "The hub is up"},
                  503: _error(503, INTERNAL)},
}

_CLI_ONLY = ("For the hub's own CLI while the server holds the database: send "
             "`Authorization: Bearer <token>` with the token the hub writes beside its "
             "database (readable by the hub's operator only).")

RECORDS_ROUTE: dict[str, Any] = {
    "summary": "Every stored revision (hub CLI)",
    "description": _CLI_ONLY,
    "tags": ["hub CLI"],
    "response_model": None,
    "responses": {200: {"model": Records, "description": "Stored revisions, by country, "
                        "year, catalogue and revision"},
                  401: _error(401, UNAUTHORIZED, "The bearer token is missing or wrong."),
                  422: _error(422, INVALID_REQUEST, "`year` is not an integer."),
                  503: _error(503, INTERNAL)},
    "openapi_extra": {"security": [{BEARER_SCHEME: []}]},
}

AUDIT_ROUTE: dict[str, Any] = {
    "summary": "The audit chain (hub CLI)",
    "description": _CLI_ONLY,
    "tags": ["hub CLI"],
    "response_model": None,
    "responses": {200: {"model": Audit, "description": "Every audit entry"},
                  401: _error(401, UNAUTHORIZED, "The bearer token is missing or wrong."),
                  503: _error(503, INTERNAL)},
    "openapi_extra": {"security": [{BEARER_SCHEME: []}]},
}

APP_METADATA: dict[str, Any] = {
    "title": "emsbench hub",
    "summary": "Receives signed aggregates of prehospital EMS indicators from national nodes",
    "description": (
        "Nodes send DSSE envelopes signed with Ed25519 keys that the hub's trust registry "
        "lists per country. The payloads are `Submission` and `Withdrawal` documents (wire "
        "v2), whose JSON Schemas are served at `/v1/schema/{name}`. Every refusal is JSON "
        "`{\"error\": {\"code\", \"message\", \"problems\"?}}`; each response below lists "
        "the codes it can carry. Every request leaves one entry in the hub's hash-chained "
        "audit log."),
    "openapi_tags": [
        {"name": "intake", "description": "Signed documents from the nodes"},
        {"name": "schemas", "description": "The published JSON Schemas of the payloads"},
        {"name": "operations", "description": "Health"},
        {"name": "hub CLI", "description": "Read access for the hub's own CLI (bearer token)"},
    ],
}


# --- routes and document --------------------------------------------------------------


def schema_files() -> dict[str, bytes]:
    """The published schema files by name: the only names ``/v1/schema/{name}`` serves."""
    return {p.name: p.read_bytes() for p in sorted(SCHEMA_DIR.glob("*.json"))}


def _honest_validation_errors(doc: dict[str, Any]) -> None:
    """FastAPI documents a 422 ``HTTPValidationError`` for every route with parameters, but
    the hub answers request validation errors with its own ErrorBody (``invalid_request``);
    and a string path parameter cannot fail validation at all."""
    error = _error(422, INVALID_REQUEST, "A query parameter is malformed.")
    error.pop("model")
    error["content"] = {"application/json": {"schema": {"$ref": COMPONENTS + "ErrorBody"}}}
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422", {})
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == COMPONENTS + "HTTPValidationError":
                if path == "/v1/schema/{name}":
                    del operation["responses"]["422"]
                else:
                    operation["responses"]["422"] = error
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _merge_components(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(Submission, "validation"), (Withdrawal, "validation"), (Receipt, "validation"),
         (Envelope, "validation")], ref_template=COMPONENTS + "{model}")
    for name, schema in defs.get("$defs", {}).items():
        # FastAPI already has Receipt and Envelope (from ReceiptResponse); names are unique
        # in the wire model, so a clash would be a new model shadowing another.
        if name in schemas and name not in ("Receipt", "Envelope", "Signature"):
            raise RuntimeError(f"OpenAPI component {name} defined twice")
        schemas.setdefault(name, schema)
    doc["components"].setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "The token the hub writes beside its database (hub CLI only)"}


def install(app: FastAPI) -> None:
    """Add the schema and docs routes and complete the OpenAPI document of ``app``
    (created with ``docs_url=None, redoc_url=None``)."""
    files = schema_files()
    names = ", ".join(files)

    @app.get("/v1/schema/{name}", tags=["schemas"], summary="A published JSON Schema",
             description=f"One of: {names}.", response_class=Response,
             responses={200: {"description": "The JSON Schema (draft 2020-12)",
                              "content": {SCHEMA_MEDIA_TYPE: {"schema": {"type": "object"}}}},
                        404: _error(404, NOT_FOUND), 503: _error(503, INTERNAL)})
    async def json_schema(name: str) -> Response:
        body = files.get(name)
        if body is None:  # only the names listed: no path ever reaches the file system
            raise StarletteHTTPException(404, f"no such schema; published: {names}")
        return Response(body, media_type=SCHEMA_MEDIA_TYPE)

    app.mount(DOCS_ASSETS, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} – API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # No badge fetched from validator.swagger.io: the page makes no outside request.
            swagger_ui_parameters={"validatorUrl": None})

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            _honest_validation_errors(doc)
            _merge_components(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
