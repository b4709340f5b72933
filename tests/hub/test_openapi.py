"""The OpenAPI document tells the truth: what the intake takes, what it answers, which error
codes each status carries (read from the code that raises them), the published schemas and
an offline ``/docs`` page."""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

import emsbench.conformance
import hub.api
import hub.store
import hub.trust
import hub.verification
from emsbench import dsse
from emsbench.conformance import CONFLICT_CODES
from emsbench.wire import SCHEMA_DIR, SUBMISSION_TYPE, Submission, Withdrawal
from hub.openapi import CONFORMANCE_CODES, INTAKE_ERRORS, ErrorBody, ReceiptResponse

INTAKE = [("/v1/submissions", "post"), ("/v1/withdrawals", "post")]
CLI = [("/v1/records", "get"), ("/v1/audit", "get")]


def _doc(hub: Any) -> dict[str, Any]:
    response = hub.client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(path, method) for path, ops in doc["paths"].items() for method in ops]


# --- the codes the hub can raise, read from its source --------------------------------


def _tree(module: Any) -> ast.Module:
    return ast.parse(Path(module.__file__).read_text(encoding="utf-8"))


def _first_args(module: Any, exception: str) -> set[str]:
    """The literal first argument of every ``exception(...)`` call in ``module``."""
    out = set()
    for node in ast.walk(_tree(module)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == exception):
            assert node.args and isinstance(node.args[0], ast.Constant), ast.unparse(node)
            out.add(node.args[0].value)
    return out


def _conformance_codes() -> set[str]:
    """Every Problem code of the conformance rules: the module's own, its margins' and its
    kinds'."""
    import pkgutil

    import emsbench.kinds
    import emsbench.margins

    out = _first_args(emsbench.conformance, "Problem") | _first_args(emsbench.margins, "Problem")
    for info in pkgutil.iter_modules(emsbench.kinds.__path__):
        out |= _first_args(importlib.import_module(f"emsbench.kinds.{info.name}"), "Problem")
    return out


def _signature_codes() -> set[str]:
    """Every ``code`` dsse.verify (and its module) can give a SignatureError."""
    default = inspect.signature(dsse.SignatureError.__init__).parameters["code"].default
    out = set()
    for node in ast.walk(_tree(dsse)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "SignatureError"):
            given = [k.value for k in node.keywords if k.arg == "code"]
            assert all(isinstance(g, ast.Constant) for g in given), ast.unparse(node)
            out.add(given[0].value if given else default)  # type: ignore[attr-defined]
    return out


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing(node: ast.AST, parents: dict[ast.AST, ast.AST], kind: type[ast.AST]
               ) -> ast.AST | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, kind):
            return node
    return None


def emitted_codes() -> Iterator[tuple[int, str, str]]:
    """``(status, code, function)`` for every refusal ``hub.api`` can answer: the literal
    ``ApiError``s of ``hub.api`` and ``hub.verification`` (the checks it shares with the
    ledger) and, for those passing on another module's code, every code that module
    raises. A new kind of call fails here until this test is taught where its codes are."""
    for module in (hub.api, hub.verification):
        yield from _emitted_in(module)


def _emitted_in(module: Any) -> Iterator[tuple[int, str, str]]:
    tree = _tree(module)
    parents = _parents(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "ApiError"):
            continue
        function = _enclosing(node, parents, ast.AsyncFunctionDef) or _enclosing(
            node, parents, ast.FunctionDef)
        name = getattr(function, "name", "?")
        status, code = node.args[0], node.args[1]
        handler = _enclosing(node, parents, ast.ExceptHandler)
        caught = ast.unparse(handler.type) if isinstance(handler, ast.ExceptHandler) and \
            handler.type is not None else ""
        if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
            yield status.value, code.value, name
        elif ast.unparse(code) == "exc.code" and caught == "dsse.SignatureError":
            assert ast.unparse(status) == "_SIGNATURE_STATUS.get(exc.code, 400)"
            for c in _signature_codes():
                yield hub.verification._SIGNATURE_STATUS.get(c, 400), c, name
        elif ast.unparse(code) == "exc.code" and caught == "KeyRefused":
            assert isinstance(status, ast.Constant)
            for c in _first_args(hub.trust, "KeyRefused"):
                yield status.value, c, name
        elif ast.unparse(code) == "exc.code" and caught == "StoreRefusal":
            assert isinstance(status, ast.Constant)
            for c in _first_args(hub.store, "StoreRefusal"):
                yield status.value, c, name
        elif ast.unparse(code) == "first.code":
            assert ast.unparse(status) == "409 if first.code in CONFLICT_CODES else 422"
            for c in _conformance_codes():
                yield (409 if c in CONFLICT_CODES else 422), c, name
        else:
            pytest.fail(f"{module.__name__} raises {ast.unparse(node)} in {name}: teach "
                        "emitted_codes where its codes come from")


def test_conformance_table_is_the_conformance_modules() -> None:
    raised = _conformance_codes()
    assert set(CONFORMANCE_CODES) == raised
    documented = set(re.findall(r"^``(\w+)``", emsbench.conformance.__doc__ or "", re.M))
    assert documented == raised


def test_every_code_the_intake_can_emit_is_documented_under_its_status(hub: Any) -> None:
    doc = _doc(hub)
    # The functions the codes are raised in, and the operations they answer for.
    where = {"_read_body": INTAKE, "_process": INTAKE, "intake": INTAKE, "_authorise": CLI,
             "open_document": INTAKE, "judge": INTAKE,
             "_unexpected": _operations(doc)}
    seen = set()
    for status, code, function in emitted_codes():
        assert function in where, f"{code} is raised in {function}: map it to its routes"
        for path, method in where[function]:
            response = doc["paths"][path][method]["responses"].get(str(status))
            assert response is not None, f"{method} {path} does not document {status}"
            assert f"`{code}`" in response["description"], (path, status, code)
            assert code in response["x-error-codes"]
        seen.add((status, code))
    # Sanity: the walk found the stages it must (a refactor must not make it vacuous).
    assert {(400, "invalid_json"), (401, "bad_signature"), (403, "revoked_key"),
            (409, "spec_mismatch"), (409, "stale_revision"), (413, "payload_too_large"),
            (422, "disclosure_violation"), (503, "overloaded"),
            (401, "unauthorized")} <= seen
    # And the table lists nothing the intake cannot send.
    intake = {(s, c) for s, c, f in emitted_codes()
              if f in ("_read_body", "_process", "open_document", "judge", "intake",
                       "_unexpected")}
    assert intake == {(s, c) for s, codes in INTAKE_ERRORS.items() for c in codes}


# --- the document ---------------------------------------------------------------------


def test_intake_documents_its_envelope_and_every_response(hub: Any) -> None:
    doc = _doc(hub)
    schemas = doc["components"]["schemas"]
    for name in ("Envelope", "ReceiptResponse", "ErrorBody", "Submission", "Withdrawal",
                 "Receipt", "Cell", "IndicatorResult"):
        assert name in schemas
    envelope = schemas["Envelope"]
    assert set(envelope["required"]) == {"payloadType", "payload", "signatures"}
    assert envelope["properties"]["signatures"]["minItems"] == 1
    for (path, method), model in zip(INTAKE, ("Submission", "Withdrawal"), strict=True):
        op = doc["paths"][path][method]
        body = op["requestBody"]
        assert body["required"] is True
        assert f"`{model}`" in body["description"] and "base64" in body["description"]
        assert f"/v1/schema/{model.lower()}-v2.json" in body["description"]
        schema = body["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": "#/components/schemas/Envelope"}]
        assert schema["properties"]["payload"]["contentSchema"] == {
            "$ref": f"#/components/schemas/{model}"}
        responses = op["responses"]
        assert set(responses) == {"200", "201", *map(str, INTAKE_ERRORS)}
        for ok in ("200", "201"):
            assert responses[ok]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ReceiptResponse"}
        for status in INTAKE_ERRORS:
            assert responses[str(status)]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"}
        assert "Retry-After" in responses["503"]["headers"]
    for path, method in CLI:
        assert doc["paths"][path][method]["security"] == [{"hubToken": []}]
    assert doc["components"]["securitySchemes"]["hubToken"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in json.dumps(doc)  # the hub never sends FastAPI's


def test_the_payload_components_are_the_wire_models(hub: Any) -> None:
    schemas = _doc(hub)["components"]["schemas"]
    for model in (Submission, Withdrawal):
        mine = model.model_json_schema(ref_template="#/components/schemas/{model}")
        mine.pop("$defs", None)
        assert schemas[model.__name__] == mine


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": doc["components"]})


def _check(doc: dict[str, Any], path: str, method: str, response: Any,
           code: str | None = None) -> None:
    """The response is one the document describes, with the schema it gives."""
    documented = doc["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (path, response.status_code)
    spec = documented[str(response.status_code)]
    schema = spec["content"]["application/json"]["schema"]
    errors = list(_validator(doc, schema).iter_errors(response.json()))
    assert not errors, errors
    if response.status_code >= 400:
        ErrorBody.model_validate(response.json())
        assert response.json()["error"]["code"] in spec["x-error-codes"]
        if code is not None:
            assert response.json()["error"]["code"] == code
    if response.status_code == 503:
        assert response.headers["Retry-After"].isdigit()


def test_real_responses_match_the_documented_schemas(hub: Any, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    doc = _doc(hub)
    sub = hub.submission()
    ok = hub.post(hub.envelope(sub))
    assert ok.status_code == 201
    _check(doc, "/v1/submissions", "post", ok)
    ReceiptResponse.model_validate_json(ok.content)
    again = hub.post(hub.envelope(sub))
    assert again.status_code == 200
    _check(doc, "/v1/submissions", "post", again)
    envelope = hub.envelope(hub.submission(sid="NO-2024-0002"))
    refusals: list[tuple[bytes | dict[str, Any], str]] = [
        (b"{not json", "invalid_json"),
        (b"[]", "invalid_envelope"),
        ({**envelope, "signatures": []}, "unsigned"),
        ({**envelope, "payload": base64.b64encode(b"{}").decode()}, "bad_signature"),
        (hub.envelope(sub, signer=dsse.generate_key()), "untrusted_key"),
        (hub.envelope(hub.submission(country="SE", sid="SE-2024-0001")), "country_mismatch"),
        (hub.envelope(hub.submission(sid="NO-2024-0003", catalogue="0" * 64)), "spec_mismatch"),
        (envelope, "stale_revision"),
        (hub.envelope(hub.submission(sid="NO-2024-0004", revision=2, threshold=2)),
         "threshold_too_low"),
        (dsse.sign(b'{"country": "NO"}', hub.keys["NO"], SUBMISSION_TYPE), "invalid_payload"),
        (b" " * (hub.config.max_body_bytes + 1), "payload_too_large"),
    ]
    for body, code in refusals:
        _check(doc, "/v1/submissions", "post", hub.post(body), code)
    withdrawal = hub.post(hub.envelope(hub.withdrawal()), path="/v1/withdrawals")
    assert withdrawal.status_code == 201
    _check(doc, "/v1/withdrawals", "post", withdrawal)

    _check(doc, "/v1/health", "get", hub.client.get("/v1/health"))
    token = hub.config.token_path.read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/v1/records", "/v1/audit"):
        _check(doc, path, "get", hub.client.get(path, headers=auth))
        _check(doc, path, "get", hub.client.get(path), "unauthorized")
    _check(doc, "/v1/records", "get", hub.client.get("/v1/records?year=soon", headers=auth),
           "invalid_request")

    # A fault of the hub: 503 with Retry-After, as documented.
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(hub.store, "accept", boom)
    faulty = TestClient(hub.app, raise_server_exceptions=False)
    response = faulty.post("/v1/submissions", content=dsse.envelope_bytes(
        hub.envelope(hub.submission(sid="NO-2024-0009", revision=5))))
    assert response.status_code == 503
    _check(doc, "/v1/submissions", "post", response, "internal_error")


# --- published schemas ----------------------------------------------------------------


def test_schema_route_serves_exactly_the_published_files(hub: Any) -> None:
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert "submission-v2.json" in files and "withdrawal-v2.json" in files
    for name in files:
        response = hub.client.get(f"/v1/schema/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/schema+json")
        assert response.content == (SCHEMA_DIR / name).read_bytes()
        assert response.json()["$id"].endswith(name)
    description = _doc(hub)["paths"]["/v1/schema/{name}"]["get"]["description"]
    assert all(name in description for name in files)


@pytest.mark.parametrize("name", [
    "submission-v1.json", "nothing", "..%2Fwire.py", "..%2F..%2Fpyproject.toml",
    "%2e%2e%2fdsse.py", "..", "%2e%2e", "submission-v2.json%00", "submission-v2.JSON",
    "..%5Cwire.py", "%2Fetc%2Fpasswd"])
def test_schema_route_refuses_other_names_with_json_404(hub: Any, name: str) -> None:
    response = hub.client.get(f"/v1/schema/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "$defs" not in response.text and "import" not in response.text


def test_schema_route_does_not_walk_paths(hub: Any) -> None:
    for path in ("/v1/schema/../../emsbench/wire.py", "/v1/schema/./submission-v2.json/x",
                 "/docs-assets/../openapi.py", "/docs-assets/..%2F__init__.py"):
        response = hub.client.get(path)
        assert response.status_code == 404 or "$defs" in response.text, path
        assert "import" not in response.text, path


# --- /docs offline ---------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("src", "href") and value:
                self.urls.append(value)


def test_docs_page_loads_only_local_assets(hub: Any) -> None:
    page = hub.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(page.text)
    assert len(parser.urls) >= 3  # css, favicon, js
    assert not re.search(r"https?://", page.text), "the page names an outside URL"
    assert "validatorUrl" in page.text  # no badge fetched from validator.swagger.io
    for url in parser.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = hub.client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    spec_url = re.search(r"url: '([^']+)'", page.text)
    assert spec_url and hub.client.get(spec_url.group(1)).json()["openapi"].startswith("3.1")
    # Swagger UI 5 renders OpenAPI 3.1 (version 4 shows "Unable to render this definition").
    bundle = hub.client.get("/docs-assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle and "isOAS31" in bundle
    for default in ("/redoc", "/docs/oauth2-redirect"):
        assert hub.client.get(default).status_code == 404


def test_docs_page_honours_root_path(hub: Any) -> None:
    client = TestClient(hub.app, root_path="/hub")
    page = client.get("/docs").text
    assert "/hub/docs-assets/swagger-ui-bundle.js" in page and "/hub/openapi.json" in page
